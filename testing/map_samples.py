"""Real-looking map and class files (Debian's stock aliases and others) the map tests share."""

# Debian's stock /etc/aliases as newaliases and the sendmail-base package leave it.
DEBIAN_ALIASES = """\
# /etc/aliases
mailer-daemon: postmaster
postmaster: root
nobody: root
hostmaster: root
usenet: root
news: root
webmaster: root
www: root
ftp: root
abuse: root
noc: root
security: root
"""

CONTINUED_ALIASES = """\
# Staff lists
staff: alice,
\tbob,
  carol@example.org
# the web team
webmaster: alice, bob@example.org
owner-staff:alice
root: "|/usr/bin/procmail -f-"

"""

VIRTUSERS = """\
# hosted domains
info@example.org\talice
@example.org\t%1@mail.example.org
abuse@example.net   error:5.7.0:550 no such user
"""

MAILERTABLE = """\
.partner.example\tesmtp:[mx.partner.example]
partner.example\tesmtp:[mx.partner.example]:2525
old.example\terror:5.1.2:550 host gone
local.example\tlocal:
"""

LOCAL_HOST_NAMES = "localhost\nvm.localdomain\n# hosted\nexample.org # with a comment\n"
