"""Custom resources against their CRD's openAPIV3Schema, as the API server
validates them, and a CRD's schema against Kubernetes' structural rules.

Validation follows apiextensions-apiserver: unknown fields are refused
(what the API server would prune, or refuse under strict field
validation) unless `x-kubernetes-preserve-unknown-fields`; `nullable`,
`x-kubernetes-int-or-string`, `x-kubernetes-embedded-resource`, list
types `set` and `map`, and the value validations (enum, pattern, lengths,
bounds, multipleOf, allOf/anyOf/oneOf/not). `x-kubernetes-validations`
rules are evaluated with CEL where the library can (cel_env.py); the rest
are counted as not evaluated, with the function they need.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import cel_env

# Formats Kubernetes recognises in a CRD (apiextensions-apiserver's
# supported formats); any other is dropped with a warning.
KNOWN_FORMATS = {
    "bsonobjectid", "uri", "email", "hostname", "ipv4", "ipv6", "cidr", "mac",
    "uuid", "uuid3", "uuid4", "uuid5", "isbn", "isbn10", "isbn13",
    "creditcard", "ssn", "hexcolor", "rgbcolor", "byte", "password", "date",
    "duration", "datetime", "date-time", "int32", "int64", "float", "double",
}
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
VALUE_ONLY_KEYS = {"allOf", "anyOf", "oneOf", "not"}


@dataclass
class Report:
    """What one validation found."""

    problems: list[str] = field(default_factory=list)
    rules_evaluated: int = 0
    rules_not_evaluated: dict[str, str] = field(default_factory=dict)


class RuleCache:
    """Compiled CEL rules, by text (CRDs repeat the same rule many times)."""

    def __init__(self) -> None:
        self._env = cel_env.environment(["self"])
        self._programs: dict[str, object] = {}

    def program(self, rule: str):
        if rule not in self._programs:
            try:
                self._programs[rule] = cel_env.compile_expression(self._env, rule)
            except cel_env.NotEvaluable as missing:
                self._programs[rule] = missing
        return self._programs[rule]


def _type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_matches(value, wanted: str) -> bool:
    actual = _type_name(value)
    return actual == wanted or (wanted == "number" and actual == "integer")


def apply_defaults(value, schema: dict):
    """`value` with the schema's `default`s filled in where a field is
    absent, recursively, as the API server does before it validates."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(value[name], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for name in value:
                if name not in properties:
                    value[name] = apply_defaults(value[name], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def validate(value, schema: dict, path: str, report: Report, rules: RuleCache,
             structural: bool = True) -> None:
    """Adds to `report` every problem of `value` at `path` against
    `schema`. `structural` is false inside allOf/anyOf/oneOf/not, which
    only check values and never decide which fields exist."""
    problems = report.problems
    if value is None:
        if not schema.get("nullable") and structural and schema:
            problems.append(f"{path}: null is not allowed here")
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            problems.append(f"{path}: must be an integer or a string, got {_type_name(value)}")
            return
    elif "type" in schema and not _type_matches(value, schema["type"]):
        problems.append(f"{path}: must be {schema['type']}, got {_type_name(value)}")
        return

    _value_checks(value, schema, path, problems)

    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            outcomes = []
            for sub in schema[key]:
                sub_report = Report()
                validate(value, sub, path, sub_report, rules, structural=False)
                outcomes.append(not sub_report.problems)
            passed = sum(outcomes)
            if key == "allOf" and passed < len(outcomes):
                problems.append(f"{path}: does not satisfy allOf")
            if key == "anyOf" and passed == 0:
                problems.append(f"{path}: satisfies none of anyOf")
            if key == "oneOf" and passed != 1:
                problems.append(f"{path}: satisfies {passed} of oneOf, not exactly one")
    if "not" in schema:
        sub_report = Report()
        validate(value, schema["not"], path, sub_report, rules, structural=False)
        if not sub_report.problems:
            problems.append(f"{path}: must not satisfy `not`")

    if isinstance(value, dict):
        _validate_object(value, schema, path, report, rules, structural)
    elif isinstance(value, list):
        _validate_array(value, schema, path, report, rules, structural)

    if structural:
        _evaluate_rules(value, schema, path, report, rules)


def _value_checks(value, schema: dict, path: str, problems: list[str]) -> None:
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{path}: {value!r} does not match {schema['pattern']!r}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{path}: longer than {schema['maxLength']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema:
            low = schema["minimum"]
            if value < low or (schema.get("exclusiveMinimum") and value == low):
                problems.append(f"{path}: {value} is below the minimum {low}")
        if "maximum" in schema:
            high = schema["maximum"]
            if value > high or (schema.get("exclusiveMaximum") and value == high):
                problems.append(f"{path}: {value} is above the maximum {high}")
        if "multipleOf" in schema and value % schema["multipleOf"]:
            problems.append(f"{path}: not a multiple of {schema['multipleOf']}")
        bounds = INT_RANGES.get(schema.get("format", ""))
        if bounds and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
            problems.append(f"{path}: {value} does not fit {schema['format']}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{path}: more than {schema['maxItems']} items")
        if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            problems.append(f"{path}: items are not unique")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{path}: {name} is required")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            problems.append(f"{path}: fewer than {schema['minProperties']} properties")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            problems.append(f"{path}: more than {schema['maxProperties']} properties")


def _validate_object(value: dict, schema: dict, path: str, report: Report,
                     rules: RuleCache, structural: bool) -> None:
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    embedded = schema.get("x-kubernetes-embedded-resource")
    for key, item in value.items():
        where = f"{path}.{key}"
        if properties is not None and key in properties:
            validate(item, properties[key], where, report, rules, structural)
        elif isinstance(additional, dict):
            validate(item, additional, where, report, rules, structural)
        elif embedded and key in ("apiVersion", "kind", "metadata"):
            continue
        elif structural and not preserve and additional is not True:
            allowed = ", ".join(sorted(properties or {})) or "none"
            report.problems.append(f"{where}: unknown field (known here: {allowed})")


def _validate_array(value: list, schema: dict, path: str, report: Report,
                    rules: RuleCache, structural: bool) -> None:
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            validate(item, items, f"{path}[{index}]", report, rules, structural)
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set" and len({repr(v) for v in value}) != len(value):
        report.problems.append(f"{path}: a set with duplicate items")
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys", [])
        seen = set()
        for item in value:
            key = tuple(repr(item.get(k)) for k in keys) if isinstance(item, dict) else None
            if key in seen:
                report.problems.append(f"{path}: two items with the same {keys}")
            seen.add(key)


def _evaluate_rules(value, schema: dict, path: str, report: Report, rules: RuleCache) -> None:
    for rule in schema.get("x-kubernetes-validations", []) or []:
        text = rule["rule"]
        if "oldSelf" in text and not rule.get("optionalOldSelf"):
            continue  # a transition rule: only on updates
        program = rules.program(text)
        if isinstance(program, cel_env.NotEvaluable):
            report.rules_not_evaluated[text] = str(program)
            continue
        report.rules_evaluated += 1
        try:
            passed = cel_env.evaluate(program, {"self": value})
        except cel_env.EvaluationError as error:
            report.problems.append(f"{path}: rule {text!r} did not evaluate: {error}")
            continue
        if passed is not True:
            report.problems.append(f"{path}: {rule.get('message') or 'rule failed'} ({text})")


def structural_problems(schema: dict, path: str = "openAPIV3Schema",
                        in_value_validation: bool = False,
                        bounded_integers: bool = False) -> list[str]:
    """Kubernetes' structural-schema rules for a CRD version's schema (the
    ones a generated schema can break), and with `bounded_integers` this
    project's own rule that every integer is an int64 or bounded."""
    problems = []
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    int_or_string = schema.get("x-kubernetes-int-or-string")
    if in_value_validation:
        for key in ("type", "nullable", "default", "description", "x-kubernetes-preserve-unknown-fields",
                    "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource", "additionalProperties"):
            if key in schema:
                problems.append(f"{path}: {key} is not allowed inside allOf/anyOf/oneOf/not")
    elif not schema.get("type") and not int_or_string and not preserve:
        problems.append(f"{path}: no type")
    if int_or_string and schema.get("type"):
        problems.append(f"{path}: x-kubernetes-int-or-string with a type")
    if "properties" in schema and isinstance(schema.get("additionalProperties"), dict):
        problems.append(f"{path}: both properties and additionalProperties")
    if schema.get("type") == "array" and not in_value_validation and "items" not in schema:
        problems.append(f"{path}: an array without items")
    if "format" in schema and schema["format"] not in KNOWN_FORMATS:
        problems.append(f"{path}: format {schema['format']!r} is not one Kubernetes recognises")
    if bounded_integers and schema.get("type") == "integer" and not in_value_validation:
        # An int64 is as wide as what the API server stores; anything
        # narrower must say its bounds, or a stored value may not decode.
        bounded = "minimum" in schema and "maximum" in schema
        if not bounded and schema.get("format") != "int64":
            problems.append(f"{path}: an integer neither int64 nor bounded by minimum and maximum")
    for name, sub in (schema.get("properties") or {}).items():
        problems += structural_problems(sub, f"{path}.properties.{name}", in_value_validation, bounded_integers)
    if isinstance(schema.get("items"), dict):
        problems += structural_problems(schema["items"], f"{path}.items", in_value_validation, bounded_integers)
    if isinstance(schema.get("additionalProperties"), dict):
        problems += structural_problems(schema["additionalProperties"], f"{path}.additionalProperties",
                                        in_value_validation, bounded_integers)
    for key in VALUE_ONLY_KEYS:
        subs = schema.get(key)
        for index, sub in enumerate(subs if isinstance(subs, list) else [subs] if subs else []):
            problems += structural_problems(sub, f"{path}.{key}[{index}]", True, bounded_integers)
    return problems
