// A run's inputs as the workflow declares them (`on: workflow_dispatch:
// inputs:`, from GET .../definition): one control per input by its type,
// and each value checked by the rules the server applies (server/inputs.py)
// before the form is sent. Whatever the server still refuses comes back
// as a 422 naming the input, shown beside it.

import { h } from "./dom.js";
import { field } from "./forms.js";

// A number as text, as the server reads one: decimals with a sign and an
// exponent (no hex, no Infinity).
const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

export const fieldName = (input) => `inputs.${input.name}`;

function control(input) {
  const name = `input-${input.name}`;
  if (input.type === "boolean") {
    const box = h("input", { type: "checkbox", name });
    box.checked = input.default === true;
    return box;
  }
  if (input.type === "choice") {
    const select = h("select", { name }, input.options.map((o) => h("option", { value: o, text: o })));
    if (input.default !== null && input.options.includes(input.default)) select.value = input.default;
    return select;
  }
  // string, environment (rota keeps no list of environments: any name), number
  const text = h("input", { name, maxlength: 65536, size: input.type === "number" ? 12 : 40,
    inputmode: input.type === "number" ? "decimal" : null,
    placeholder: input.type === "environment" ? "an environment's name" : null });
  if (input.default !== null && input.default !== undefined) text.value = String(input.default);
  return text;
}

export function inputField(input) {
  const help = [input.type === "string" ? "" : input.type, input.description].filter(Boolean).join(" · ");
  return field(input.name, control(input), { name: fieldName(input), help, required: input.required });
}

// {value} to send, {omit: true} to let the server apply the default, or
// {error} in the server's words.
export function checkInput(input, el) {
  if (input.type === "boolean") return { value: el.checked };
  if (input.type === "choice") {
    if (input.options.includes(el.value)) return { value: el.value };
    return { error: `choice input must be one of ${input.options.join(", ")} (got '${el.value}')` };
  }
  const text = el.value;
  if (text === "" || (input.type === "number" && text.trim() === "")) {
    if (input.required && (input.default === null || input.default === undefined)) {
      return { error: `required${input.description ? ` (${input.description})` : ""}` };
    }
    return { omit: true };
  }
  if (input.type !== "number") return { value: text };
  if (!DECIMAL.test(text.trim())) return { error: `number input must be a number (got '${text}')` };
  const number = Number(text.trim());
  if (!Number.isFinite(number)) return { error: "number input must be a finite number" };
  return { value: number };
}
