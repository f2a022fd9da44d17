"""The device inventory, one module per aggregate (as NetBox splits ``dcim/models``).

- :mod:`~netpulse.inventory.validation`: the device input record and its field checks;
- :mod:`~netpulse.inventory.labels`: sites, groups and tags by name, created on demand;
- :mod:`~netpulse.inventory.devices`: device CRUD, filters and status counts;
- :mod:`~netpulse.inventory.checks`: service checks (a TCP port or an HTTP(S) URL of a device);
- :mod:`~netpulse.inventory.credentials`: SNMP credential profiles (v2c communities, v3 users);
- :mod:`~netpulse.inventory.scopes`: what rules, maintenance windows and SLA targets apply to;
- :mod:`~netpulse.inventory.csv_import`: the all-or-nothing CSV import.

Every query filters by organization. Functions flush but never commit: the caller owns the
transaction. Validation errors are field-keyed and name the values (NetBox's ``clean()``)::

    ValidationError(details={"address": "'300.1.1.1' is not a valid IP address or hostname"})
"""

from netpulse.inventory.checks import (
    DEFAULT_CHECK_TIMEOUT_S,
    HTTP_METHODS,
    RunnableCheck,
    ServiceCheckSpec,
    add_service_check,
    get_service_check,
    http_url_problem,
    list_service_checks,
    remove_service_check,
    runnable_service_checks,
)
from netpulse.inventory.credentials import (
    AUTH_PROTOCOLS,
    PRIV_PROTOCOLS,
    CredentialUsage,
    SnmpCredentialSpec,
    add_snmp_credential,
    credential_view,
    get_snmp_credential,
    list_snmp_credentials,
    remove_snmp_credential,
)
from netpulse.inventory.csv_import import CSV_COLUMNS, CSV_REQUIRED, DeviceImportError, ImportReport, import_devices_csv
from netpulse.inventory.devices import (
    create_device,
    delete_device,
    delete_devices,
    get_device,
    get_device_by_name,
    list_devices,
    status_counts,
    update_device,
)
from netpulse.inventory.labels import get_or_create_group, get_or_create_site, get_or_create_tag
from netpulse.inventory.scopes import SCOPES, resolve_scope_ref
from netpulse.inventory.validation import DeviceSpec, slugify

__all__ = [
    "DeviceSpec", "ImportReport", "DeviceImportError", "slugify",
    "create_device", "get_device", "get_device_by_name", "list_devices", "update_device", "delete_device",
    "delete_devices",
    "get_or_create_site", "get_or_create_group", "get_or_create_tag", "status_counts", "import_devices_csv",
    "CSV_COLUMNS", "CSV_REQUIRED",
    "ServiceCheckSpec", "RunnableCheck", "HTTP_METHODS", "DEFAULT_CHECK_TIMEOUT_S", "http_url_problem",
    "add_service_check", "list_service_checks", "get_service_check", "remove_service_check",
    "runnable_service_checks",
    "AUTH_PROTOCOLS", "PRIV_PROTOCOLS", "SnmpCredentialSpec", "CredentialUsage", "add_snmp_credential",
    "list_snmp_credentials", "get_snmp_credential", "remove_snmp_credential", "credential_view",
    "SCOPES", "resolve_scope_ref",
]
