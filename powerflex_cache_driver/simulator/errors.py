#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""Gateway error envelope and the return codes the simulator emits.

Every error the simulator answers is an :class:`ApiError` rendered as the
gateway's JSON envelope ``{"message", "httpStatusCode", "errorCode"}``, with
an optional non-empty ``details`` list for multi-object operations. The
numeric codes are those of the reference (section 4): the small ones are
confirmed against real arrays, codes marked "assumption" are simulator
choices.

The out-of-space codes 190 (VOL_SIZE_TOO_LARGE), 191
(CAPACITY_TOO_LOW_FOR_SNAP) and 300 (TOO_MUCH_THIN_CAPACITY), the removal
code 212 (VOL_REMOVE_IN_PROGRESS) and 225 (VOL_SIZE_ILLEGAL) and their
messages are the 0-based ordinals and texts of Dell's goscaleio
``types/v1/code.properties.go`` (generated from the array's
``mos_rc.xml``); the ordinals of that file match every code confirmed on
real arrays (79, 81, 84, 142, 182, 226: reference section 4.2). The 212
text is also the one Dell's csi-powerflex matches on a ``GET`` of a volume
being removed (``sioVolumeRemovalOperationInProgress``).
"""

from typing import Any, Optional

# Codes the clients branch on (reference section 4.1).
ILLEGAL = 0
NOT_FOUND = 3
VOL_NOT_FOUND = 79
INI_NOT_FOUND = 80
VOL_ALREADY_MAPPED_TO_THIS_INI = 81
VOL_NOT_MAPPED_TO_INI = 84
VOL_NAME_IN_USE = 99
VOL_MAPPED = 104
VOL_DECREASE_NOT_SUPPORTED = 133
FD_NOT_FOUND = 142
STORAGE_POOL_NOT_FOUND = 171
TOO_MANY_VOLS_IN_VTREE = 181
TOO_MANY_SNAPS_IN_VTREE = 182
VOL_SIZE_TOO_LARGE = 190
CAPACITY_TOO_LOW_FOR_SNAP = 191
VTREE_ID_MISMATCH = 198
VOL_REMOVE_IN_PROGRESS = 212
VOL_SIZE_ILLEGAL = 225
LONG_NAME = 226
INVALID_NAME = 227
TOO_MUCH_THIN_CAPACITY = 300
VOL_ALREADY_MAPPED_TO_AN_INI = 315
VOLUME_AND_SNAPSHOT_MATCH = 330
VTREE_MIGRATION_IN_PROGRESS = 717
VTREE_MIGRATE_SAME_SP = 718
VOL_ALREADY_MAPPED_V4 = 4037
VOL_NOT_MAPPED_V4 = 4039

MESSAGES = {
    NOT_FOUND: "Not found",
    VOL_NOT_FOUND: "Could not find the volume",
    INI_NOT_FOUND: "Could not find the SDC",
    VOL_ALREADY_MAPPED_TO_THIS_INI: "The volume is already mapped to this SDC",
    VOL_NOT_MAPPED_TO_INI: "The volume is not mapped to SDC",
    VOL_NAME_IN_USE:
        "Volume name already in use. Please use a different name.",
    VOL_MAPPED: "Volume is mapped",
    VOL_DECREASE_NOT_SUPPORTED: "Volume capacity can only be increased",
    FD_NOT_FOUND: "Could not find Protection Domain",
    STORAGE_POOL_NOT_FOUND: "Could not find Storage Pool",
    TOO_MANY_VOLS_IN_VTREE: "There are too many volumes in the VTree",
    TOO_MANY_SNAPS_IN_VTREE: "There are too many snapshots in the VTree",
    VOL_SIZE_TOO_LARGE: "The volume size too large",
    CAPACITY_TOO_LOW_FOR_SNAP:
        "The capacity of the Storage Pool is too small to create new "
        "snapshots",
    VOL_REMOVE_IN_PROGRESS:
        "A volume removal operation is currently in progress.",
    VTREE_ID_MISMATCH:
        "To overwrite the content of a volume, the source and target "
        "volumes must be from the same V-Tree.",
    VOL_SIZE_ILLEGAL:
        "The specified volume size is illegal. Volume size must be in "
        "8 GB blocks",
    LONG_NAME: "The given name exceeds the allowed length of 31 characters.",
    INVALID_NAME:
        "The given name contains invalid characters. Use alphanumeric and "
        "punctuation characters only. Spaces are not allowed.",
    TOO_MUCH_THIN_CAPACITY:
        "Requested volume size exceeds the volume allocation limit",
    VOL_ALREADY_MAPPED_TO_AN_INI: "The volume is already mapped to a SDC",
    VOLUME_AND_SNAPSHOT_MATCH:
        "You cannot overwrite a volume with itself.",
    VTREE_MIGRATION_IN_PROGRESS:
        "The V-Tree is already undergoing migration to the same Storage "
        "Pool.",
    VTREE_MIGRATE_SAME_SP:
        "The destination Storage Pool and the source Storage Pool are the "
        "same.",
    VOL_ALREADY_MAPPED_V4: "The volume is already mapped to this host",
    VOL_NOT_MAPPED_V4: "The volume is not mapped to this host",
}

# Symbolic names used in ``details[].error``.
NAMES = {
    VOL_NOT_FOUND: "VOL_NOT_FOUND",
    TOO_MANY_VOLS_IN_VTREE: "TOO_MANY_VOLS_IN_VTREE",
    CAPACITY_TOO_LOW_FOR_SNAP: "CAPACITY_TOO_LOW_FOR_SNAP",
    VOL_NAME_IN_USE: "VOL_NAME_IN_USE",
    TOO_MANY_SNAPS_IN_VTREE: "TOO_MANY_SNAPS_IN_VTREE",
    LONG_NAME: "LONG_NAME",
    INVALID_NAME: "INVALID_NAME",
}


class ApiError(Exception):
    """An error answer of the gateway.

    :param http_status: HTTP status of the answer (500 for array errors,
        400 for request validation, 401 for authentication).
    :param error_code: ``errorCode`` of the envelope (a number).
    :param message: ``message``; defaults to the code's known text.
    :param details: optional non-empty list of ``details`` entries.
    """

    def __init__(self, http_status: int, error_code: int,
                 message: Optional[str] = None,
                 details: Optional[list[dict[str, Any]]] = None) -> None:
        self.http_status = http_status
        self.error_code = error_code
        self.message = message or MESSAGES.get(error_code, "Error")
        self.details = details
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """Return the JSON envelope of this error."""
        result: dict[str, Any] = {
            "message": self.message,
            "httpStatusCode": self.http_status,
            "errorCode": self.error_code,
        }
        if self.details:
            result["details"] = self.details
        return result


def array_error(code: int, message: Optional[str] = None) -> ApiError:
    """Return an MDM error (HTTP 500) with ``code``."""
    return ApiError(500, code, message)


def invalid_request(reason: str) -> ApiError:
    """Return a request-validation error (HTTP 400, errorCode 0)."""
    return ApiError(400, ILLEGAL, "Request message is not valid: " + reason)


def unauthorized() -> ApiError:
    """Return the gateway's 401 answer (JSON envelope form)."""
    return ApiError(401, ILLEGAL, "Unauthorized")


UNAUTHORIZED_HTML = (
    "<!doctype html><html lang=\"en\"><head><title>HTTP Status 401 \u2013 "
    "Unauthorized</title></head><body><h1>HTTP Status 401 \u2013 "
    "Unauthorized</h1></body></html>")
"""The body of a gateway 401 in its default, non-JSON form.

The gateway's authentication filter answers a refused login or token
before any REST handler runs, so the answer is the web container's
error page, not the REST error envelope: LXD's PowerFlex driver
(canonical/lxd ``driver_powerflex_utils.go``, reference section 1.4)
handles 401s that come back without ``Content-Type: application/json``.
The page text is an assumption (a Tomcat-style status page).
"""


def not_found(what: str = "Not found") -> ApiError:
    """Return the answer to an unknown URL (HTTP 404)."""
    return ApiError(404, ILLEGAL, what)


def with_details(rc: int, message: Optional[str] = None,
                 http_status: int = 500, error_code: int = ILLEGAL
                 ) -> ApiError:
    """Return an "Error with details" answer whose ``details[0].rc`` is rc.

    This is the shape multi-object operations such as ``snapshotVolumes``
    use, for example for the VTree snapshot limit (rc 182).
    """
    detail = {
        "error": NAMES.get(rc, "RC_%d" % rc),
        "rc": rc,
        "errorMessage": message or MESSAGES.get(rc, "Error"),
    }
    return ApiError(http_status, error_code, "Error with details", [detail])
