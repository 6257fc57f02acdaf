"""The one registry implementation (reid.registration.Registry) that methods and evaluation protocols share."""

import pytest

from reid.errors import ConfigError
from reid.evaluation.protocols import get_protocol, register_protocol
from reid.registration import METHODS, Registry
from reid.registry import get_method


def test_a_name_registers_once_and_a_miss_names_the_known_ones():
    reg: Registry[int] = Registry("widget")
    assert reg.add("b", 2) == 2 and reg.add("a", 1) == 1
    assert reg.get("a") == 1 and reg.names() == ["a", "b"] and "b" in reg and "c" not in reg
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        reg.add("a", 3)
    with pytest.raises(ConfigError, match="unknown widget 'c'; known widgets: a, b"):
        reg.get("c")


def test_methods_and_protocols_use_it():
    assert get_method("baseline") is METHODS.get("baseline")
    with pytest.raises(ValueError, match="protocol 'generic' is registered twice"):
        register_protocol(get_protocol("generic"))
