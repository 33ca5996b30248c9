"""Model zoo: `models.create(name, **kwargs) -> nn.Module`.

Built-in models register themselves with `@register_model` in their own module (every module in
this package is imported below, so a new file is all a new model needs). A name of the form
`MODULE:FUNCTION` or `FILE.py:FUNCTION` is the user's own network (models/user.py). Keyword types
come from each factory's annotations; unknown names or keywords, and values of the wrong type,
raise `ValueError` with one line naming what is expected.
"""
import importlib
import pkgutil

from .registry import (ModelSpec, check_kwargs, create, identity, is_user_spec, keyed_kwargs, model_keywords,
                       model_name, param_count, register_model, registered, resolve, row_fields, unchecked,
                       unchecked_note)

__all__ = ["ModelSpec", "check_kwargs", "create", "identity", "is_user_spec", "keyed_kwargs", "model_keywords",
           "model_name", "param_count", "register_model", "registered", "resolve", "row_fields", "unchecked",
           "unchecked_note"]

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")
