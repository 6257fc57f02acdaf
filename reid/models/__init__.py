"""Models, one file per method. Importing this package registers every method (`reid.registration.METHODS`)."""

from reid.models import adfta, asanet, astpn, baseline, fcnta, posetap  # noqa: F401  (each registers its method)
