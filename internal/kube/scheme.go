// Package kube holds what every client of alertbridge's API needs: the
// scheme with Kubernetes' built-in kinds and alertbridge's.
package kube

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// NewScheme returns a scheme with client-go's kinds and ops.alertbridge.io/v1alpha1.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1.AddToScheme(s))
	return s
}

// CacheOptions are the informer cache settings of `alertbridge run`, which
// the tests' in-process operator uses too. The cache drops managedFields:
// nothing reads them, and under a storm of status writes they are a large
// share of every cached Alert.
func CacheOptions() cache.Options {
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
}
