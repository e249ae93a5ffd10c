"""Model backends behind one interface (see base.Backend) and the registry that picks one."""
