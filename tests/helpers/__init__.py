"""What tests share besides fixtures: servers, clients, sample data and writers, one module a
topic. Test modules import from here, never from a conftest module or from another test
module; conftest modules hold fixtures only (tests/unit/test_test_layout.py checks this)."""
