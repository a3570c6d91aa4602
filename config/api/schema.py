"""Post-processing of the OpenAPI document (drf-spectacular's POSTPROCESSING_HOOKS)."""


def request_bodies_closed(result, generator, request, public):
    """Every request body component (`…Request`, split from the responses by
    COMPONENT_SPLIT_REQUEST) takes no field it does not list: the serializers refuse
    unknown fields (config/api/strict.py), and the document says so."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object" and "properties" in component:
            component["additionalProperties"] = False
    return result
