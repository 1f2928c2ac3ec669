package kube

import (
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// NewRESTMapper maps alertbridge's kinds and the reviews a client asks
// (who am I, may I) without asking the API server, and anything else by
// discovery on first use. A CLI call is one process: discovering the
// groups it needs would cost it more requests than its work.
func NewRESTMapper(cfg *rest.Config, hc *http.Client) (meta.RESTMapper, error) {
	dynamic, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, err
	}
	static := meta.NewDefaultRESTMapper([]schema.GroupVersion{v1.GroupVersion, authenticationv1.SchemeGroupVersion, authorizationv1.SchemeGroupVersion})
	for _, kind := range []string{"Alert", "Incident", "SLOPolicy", "AlertRoutingPolicy"} {
		static.Add(v1.GroupVersion.WithKind(kind), meta.RESTScopeNamespace)
	}
	for _, gvk := range []schema.GroupVersionKind{
		authenticationv1.SchemeGroupVersion.WithKind("SelfSubjectReview"),
		authenticationv1.SchemeGroupVersion.WithKind("TokenReview"),
		authorizationv1.SchemeGroupVersion.WithKind("SubjectAccessReview"),
		authorizationv1.SchemeGroupVersion.WithKind("SelfSubjectAccessReview"),
	} {
		static.Add(gvk, meta.RESTScopeRoot)
	}
	return meta.FirstHitRESTMapper{MultiRESTMapper: meta.MultiRESTMapper{static, dynamic}}, nil
}
