"""DMS adapters: the xdomea import and export over one port, with two backends."""
