// Package v1alpha1 contains the alertbridge API: Alert, Incident, SLOPolicy,
// AlertRoutingPolicy and Silence in the group ops.alertbridge.io.
// +kubebuilder:object:generate=true
// +groupName=ops.alertbridge.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "ops.alertbridge.io", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this group-version; the API
	// package depends on apimachinery only, so it uses apimachinery's builder.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Alert{}, &AlertList{},
		&Incident{}, &IncidentList{},
		&SLOPolicy{}, &SLOPolicyList{},
		&AlertRoutingPolicy{}, &AlertRoutingPolicyList{},
		&Silence{}, &SilenceList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
