"""Sealed secrets: AES-GCM under the secret key, bound to a purpose, open under fallbacks."""
import pytest

from authserver import sealing

CFG = {"SECRET_KEY": "k" * 40}


def test_seal_round_trips_and_never_contains_the_plaintext():
    sealed = sealing.seal(CFG, b"JBSWY3DPEHPK3PXP", "totp")
    assert sealed.startswith("v1.") and "JBSWY3DPEHPK3PXP" not in sealed
    assert sealing.unseal(CFG, sealed, "totp") == b"JBSWY3DPEHPK3PXP"


def test_a_value_sealed_for_one_purpose_does_not_open_for_another():
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(CFG, sealing.seal(CFG, b"x", "totp"), "signing-key")


def test_another_secret_key_cannot_open_it_unless_listed_as_a_fallback():
    sealed = sealing.seal(CFG, b"x", "totp")
    new = {"SECRET_KEY": "n" * 40}
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(new, sealed, "totp")
    rotated = {"SECRET_KEY": "n" * 40, "SECRET_KEY_FALLBACKS": ["k" * 40]}
    resealed = sealing.reseal(rotated, sealed, "totp")
    assert sealing.unseal(new, resealed, "totp") == b"x"


@pytest.mark.parametrize("bad", ["", "v1.", "v1.!!!", "plain", "v1." + "A" * 40])
def test_garbage_is_refused_cleanly(bad):
    with pytest.raises(sealing.SealBroken):
        sealing.unseal(CFG, bad, "totp")
