"""Archives: the simulator of an archive's receiving system (x-man) on the file level."""
