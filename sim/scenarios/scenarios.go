// Package scenarios embeds the simulator's shipped scenarios, so that
// `archy sim run flash-crowd` works from any folder.
package scenarios

import (
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/archy-node/archy/sim/scenario"
)

//go:embed *.yaml
var files embed.FS

// Names lists the shipped scenarios.
func Names() []string {
	ents, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	slices.Sort(out)
	return out
}

// Load parses the shipped scenario called name.
func Load(name string) (*scenario.Scenario, error) {
	b, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no shipped scenario %q (shipped: %s)", name, strings.Join(Names(), ", "))
	}
	s, err := scenario.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", name, err)
	}
	return s, nil
}
