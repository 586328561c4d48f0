"""FVDaten: a Fachverfahren's requests carried out on the DMS and answered with a 0630."""
