from tests.encoders.parity import parametrize_encoders


def pytest_generate_tests(metafunc):
    parametrize_encoders(metafunc)
