"""Borough directories: LDAP and Active Directory over ldap3, and a static file directory.

This package authenticates people against a directory and reads their account records
(status, attributes, groups). It knows nothing of federation, the broker or policies:
``federation`` adapts a directory into an identity source.
"""

from directories.errors import DirectoryError, DirectoryErrorCode
from directories.records import AccountRecord, AccountStatus, GroupRef

__all__ = ["AccountRecord", "AccountStatus", "DirectoryError", "DirectoryErrorCode", "GroupRef"]
