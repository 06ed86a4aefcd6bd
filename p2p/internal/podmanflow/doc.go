// Package podmanflow holds the end-to-end test of images through the swarm
// into a real Podman: an image pushed on one node, pulled on another over
// real libp2p hosts, verified, loaded into rootless Podman and run. It has
// no code of its own; it is a package so that its test binary, which
// talks to Podman, is separate from p2p's.
package podmanflow
