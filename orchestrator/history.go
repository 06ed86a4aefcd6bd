package orchestrator

// Releases returns an installed app's current release and the one its
// last update replaced (nil when none), as the node keeps them.
func (o *Orchestrator) Releases(id string) (current, previous *Release) {
	o.mu.Lock()
	defer o.mu.Unlock()
	a, ok := o.apps[id]
	if !ok || a.state == nil {
		return nil, nil
	}
	return a.state.Current, a.state.Previous
}
