package registry

// Validate checks every rule of the schema and the rootless invariants.
// Placeholder until the validation rules land.
func (m *Manifest) Validate() error { return nil }
