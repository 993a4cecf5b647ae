"""Contact details in chat messages (phones, e-mails, links, messenger contacts), found as spans of
the original text so they can be masked, refused or flagged (see the protocol's "Contact details").

Pure: no I/O, no settings; the caller builds one :class:`ContactDetector` from
``CONTACT_ALLOWED_HOSTS`` and passes it where messages are checked.
"""

from marketplace_chat.contacts.detector import ContactDetector
from marketplace_chat.contacts.model import Category, Detection, Finding, mask

__all__ = ["Category", "ContactDetector", "Detection", "Finding", "mask"]
