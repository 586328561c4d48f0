"""The generic SOAP destination: one operation of a partner's WSDL, fed by a declarative mapping."""
