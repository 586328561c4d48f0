"""The dmsin DMS simulator (``ikz-gateway dev dms-sim``): a test double built from the WSDL."""
