"""What runs on an MTA host, in its agent only: the gateway (the one module that runs
sendmail, m4 and makemap), instance set-up, daemon control, cf build and install, file
primitives, the spool layout and the log sink. Nothing the web tier imports reaches here.
"""
