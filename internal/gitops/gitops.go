// Package gitops recognises objects that a GitOps tool tracks. The operator
// never deletes those: the tool would only recreate them, or report drift.
package gitops

import "sigs.k8s.io/controller-runtime/pkg/client"

// Markers that Argo CD and Flux put on the objects they manage.
var (
	annotations = []string{
		"argocd.argoproj.io/tracking-id",
	}
	labels = []string{
		"argocd.argoproj.io/instance",
		"kustomize.toolkit.fluxcd.io/name",
		"helm.toolkit.fluxcd.io/name",
	}
)

// Managed reports whether obj carries a GitOps tracking marker.
func Managed(obj client.Object) bool {
	for _, a := range annotations {
		if _, ok := obj.GetAnnotations()[a]; ok {
			return true
		}
	}
	for _, l := range labels {
		if _, ok := obj.GetLabels()[l]; ok {
			return true
		}
	}
	return false
}
