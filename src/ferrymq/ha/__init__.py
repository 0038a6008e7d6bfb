"""Who may serve: locks on the shared store and the node's role."""
