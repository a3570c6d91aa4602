"""Post-processing of the OpenAPI document (drf-spectacular's POSTPROCESSING_HOOKS)."""


def query_parameters_may_be_empty(result, generator, request, public):
    """An optional query parameter sent empty (`?start=`) is the parameter left out: the
    filters and the pagination ignore it. The document says so (`allowEmptyValue`)."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
    return result


def request_bodies_closed(result, generator, request, public):
    """Every request body component (`…Request`, split from the responses by
    COMPONENT_SPLIT_REQUEST) takes no field it does not list: the serializers refuse
    unknown fields (config/api/strict.py), and the document says so."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object" and "properties" in component:
            component["additionalProperties"] = False
    return result
