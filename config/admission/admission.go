// Package admission embeds the admission policies shipped in config/admission
// so the operator installs exactly what the repository ships.
package admission

import _ "embed"

// MirrorFinalizerPolicy is the MutatingAdmissionPolicy and its binding that
// put the mirror finalizer on alertbridge objects at creation.
//
//go:embed mirror_finalizer.yaml
var MirrorFinalizerPolicy []byte
