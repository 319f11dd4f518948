"""CEL as Kubernetes evaluates it, as far as the CEL library at hand goes.

Kubernetes evaluates CRD validation rules and admission policies with
cel-go and these extensions: strings, optional types, `cel.bind`, lists,
sets, regex, urls, IPs and CIDRs, quantities, semver, format and authz.
`cel-expr-python` (Google's CEL runtime, cel-cpp) has the same language and
the strings, optional and bindings extensions; Kubernetes' own libraries
(urls: isURL/url/getScheme/..., regex find/findAll, lists isSorted/sum/...,
IP/CIDR, quantity, semver, format, authz) are not there. A rule that needs
one fails to compile here and is reported as not evaluated, with the
function it needs: never passed silently.
"""

from __future__ import annotations

import re

from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_optional, ext_strings

_UNDECLARED = re.compile(r"undeclared reference to '([^']+)'")
_NO_OVERLOAD = re.compile(r"found no matching overload for '([^']+)'")


class NotEvaluable(Exception):
    """The expression needs a function this CEL library does not have."""


class EvaluationError(Exception):
    """The expression did not evaluate (a missing key, no such overload)."""


def environment(variables: list[str]) -> "cel.Env":
    """An environment whose variables are all of type dyn (Kubernetes
    hands objects to CEL as plain maps at run time)."""
    return cel.NewEnv(
        variables={name: cel.Type.DYN for name in variables},
        extensions=[
            ext_strings.ExtStrings(),
            ext_optional.ExtOptional(),
            ext_bindings.ExtBindings(),
        ],
    )


def compile_expression(env, expression: str):
    """The compiled expression; NotEvaluable when it names a function the
    library lacks, ValueError for any other compile error."""
    try:
        return env.compile(expression)
    except Exception as error:  # the binding raises plain exceptions
        text = str(error)
        missing = _UNDECLARED.findall(text) or _NO_OVERLOAD.findall(text)
        if missing:
            raise NotEvaluable(", ".join(sorted(set(missing)))) from None
        raise ValueError(text) from None


def evaluate(program, data: dict):
    """The expression's value as plain Python; raises on an evaluation
    error (a missing key, a type error), as Kubernetes reports one."""
    value = program.eval(data=data)
    if value.type() == cel.Type.ERROR:
        raise EvaluationError(str(value.plain_value()))
    return value.plain_value()
