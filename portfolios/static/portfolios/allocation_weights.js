"use strict";
// The allocation page's live "sum of weights": adds up the weights of the lines that
// are not marked for deletion, exactly (BigInt, 12 decimal places, as stored), while
// the user types. The server still decides (allocation_validate); this only helps.
{
    const PLACES = 12;

    function parse(text) {
        const match = /^\s*(\d*)(?:\.(\d*))?\s*$/.exec(text);
        if (!match || (match[1] === "" && !match[2]) || (match[2] || "").length > PLACES) {
            return null;
        }
        return BigInt((match[1] || "0") + (match[2] || "").padEnd(PLACES, "0"));
    }

    function format(value) {
        const digits = value.toString().padStart(PLACES + 1, "0");
        const fraction = digits.slice(-PLACES).replace(/0+$/, "");
        return digits.slice(0, -PLACES) + (fraction ? "." + fraction : "");
    }

    function update() {
        const output = document.getElementById("allocation-weight-sum");
        if (!output) {
            return;
        }
        const prefix = output.dataset.prefix;
        let total = 0n;
        let unreadable = 0;
        document.querySelectorAll(`#${prefix}-group tr.form-row:not(.empty-form)`).forEach((row) => {
            const weight = row.querySelector(`input[name$="-weight"]`);
            const remove = row.querySelector(`input[name$="-DELETE"]`);
            if (!weight || (remove && remove.checked) || weight.value.trim() === "") {
                return;
            }
            const value = parse(weight.value);
            if (value === null) {
                unreadable += 1;
            } else {
                total += value;
            }
        });
        const normalize = document.getElementById("id_normalize");
        const one = 10n ** BigInt(PLACES);
        let note;
        if (unreadable) {
            note = `(${unreadable} weight${unreadable > 1 ? "s are" : " is"} not a number with at most ${PLACES} decimals)`;
        } else if (normalize && normalize.checked) {
            note = total > 0n ? "(normalize: will be divided by this sum)" : "";
        } else if (total === one) {
            note = "(= 1)";
        } else {
            note = "(must be exactly 1 without future lines, or tick normalize)";
        }
        output.querySelector("[data-sum]").textContent = format(total);
        output.querySelector("[data-note]").textContent = note;
    }

    document.addEventListener("input", update);
    document.addEventListener("change", update);
    document.addEventListener("formset:added", update);
    document.addEventListener("formset:removed", update);
    if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", update);
    } else {
        update();
    }
}
