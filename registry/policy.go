package registry

import (
	"fmt"
	"slices"
	"strings"
)

// The node's runtime policy, the one place it is defined: every container
// runs with all capabilities dropped except the allow-listed ones its
// manifest adds back (cap_add), with no-new-privileges set, and under the
// engine's default seccomp profile. Validation refuses anything else; the
// orchestrator's engine spec and the Quadlet renderer apply it through
// Capabilities.

// AllowedCapabilities is the only capabilities a container may add. It is
// exactly Podman's default set (containers.conf default_capabilities:
// the ten of containers/common plus SYS_CHROOT): what an ordinary rootless
// container already holds, and only inside its own user namespace. Listing
// one lets an app keep it when the node drops everything else. Anything
// that reaches outside the container (SYS_ADMIN, NET_ADMIN, NET_RAW,
// SYS_PTRACE, SYS_MODULE, MKNOD, BPF, PERFMON, ALL...) is refused.
var AllowedCapabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
	"SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// Capabilities returns the capabilities a container keeps: its cap_add,
// each in AllowedCapabilities, once, in the manifest's order (nil for
// none). Every other capability is dropped. An error names the first
// capability the policy refuses.
func Capabilities(c *Container) ([]string, error) {
	var out []string
	for _, name := range c.CapAdd {
		switch {
		case !slices.Contains(AllowedCapabilities, name):
			return nil, fmt.Errorf("container %s: cap_add %q is refused: only %s may be added", c.Name, clip(name), strings.Join(AllowedCapabilities, ", "))
		case slices.Contains(out, name):
			return nil, fmt.Errorf("container %s: cap_add %s is listed twice", c.Name, name)
		}
		out = append(out, name)
	}
	return out, nil
}

// VolumeRef names one volume of a manifest: containers[Container].volumes[Volume].
type VolumeRef struct{ Container, Volume int }

// NestedAcrossContainers finds a volume path that lies inside another
// container's volume path (d/sub under d), or ok false when there is none.
// Such a pair is refused: the container mounting d could swap d/sub for a
// symlink while the other runs, between the node's check of d/sub and the
// engine's mount of it. Within one container nesting is allowed: the node
// checks every path again at each start, while none of that container's
// processes run.
func NestedAcrossContainers(m *Manifest) (inner, outer VolumeRef, ok bool) {
	for i, c := range m.Containers {
		for j, v := range c.Volumes {
			for k, o := range m.Containers {
				if k == i {
					continue
				}
				for l, w := range o.Volumes {
					if strings.HasPrefix(v.Path, w.Path+"/") {
						return VolumeRef{i, j}, VolumeRef{k, l}, true
					}
				}
			}
		}
	}
	return VolumeRef{}, VolumeRef{}, false
}
