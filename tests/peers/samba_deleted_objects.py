"""Grant a trustee List Contents + Read Property on a domain's ``CN=Deleted Objects``.

Run with Samba's own Python (the interpreter of ``samba-tool``), offline or while the DC
runs: ``samba_deleted_objects.py SMB_CONF SAM_LDB BASE_DN TRUSTEE_SID``. This is the
delegation an AD administrator makes (``dsacls "CN=Deleted Objects,..." /G svc:LCRP``) so
that a service account can see tombstones with the Show Deleted control
(1.2.840.113556.1.4.417); ``samba-tool dsacl`` cannot, as it reads the container without
that control.
"""

import sys

import ldb
from samba.auth import system_session
from samba.dcerpc import security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB


def main(conf: str, sam: str, base: str, sid: str) -> None:
    """Add the ACE (A;;LCRP;;;sid) to the container's DACL. Returns None."""
    lp = LoadParm()
    lp.load(conf)
    db = SamDB(url=sam, session_info=system_session(), lp=lp)
    res = db.search(base=f"CN=Deleted Objects,{base}", scope=ldb.SCOPE_BASE, attrs=["nTSecurityDescriptor"],
                    controls=["show_deleted:1"])
    desc = ndr_unpack(security.descriptor, res[0]["nTSecurityDescriptor"][0])
    ace = security.descriptor.from_sddl(f"D:(A;;LCRP;;;{sid})", security.dom_sid(db.get_domain_sid())).dacl.aces[0]
    desc.dacl_add(ace)
    message = ldb.Message()
    message.dn = res[0].dn
    message["nTSecurityDescriptor"] = ldb.MessageElement(ndr_pack(desc), ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
    db.modify(message, controls=["show_deleted:1"])


if __name__ == "__main__":
    main(*sys.argv[1:5])
