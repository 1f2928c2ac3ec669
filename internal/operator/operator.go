// Package operator puts the whole operator on a manager: the reconcilers of
// package controllers, the PostgreSQL mirror of controllers/mirror, their
// metrics and the mirror's readiness. `alertbridge run`, the test operator
// (test/integration/testoperator) and the benchmarks share it, so tests run the
// operator exactly as it ships.
//
// It is the one place that knows both: controllers and controllers/mirror
// import neither each other nor this package, and what they share goes
// through their options (Controllers.MirrorEnabled, Mirror.Clock).
package operator

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/alertbridge/alertbridge/controllers"
	mirrorctrl "github.com/alertbridge/alertbridge/controllers/mirror"
	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/metrics"
)

// Options configure the operator; zero values mean the defaults.
type Options struct {
	// Controllers tune the reconcilers of Alerts, Incidents and SLOPolicies.
	// Their Clock is the mirror's too, unless Mirror.Clock is set.
	Controllers controllers.Options
	// Mirror configures the PostgreSQL mirror and the readiness it adds;
	// a nil Store turns the mirror off.
	Mirror mirrorctrl.Options
	// Certificates, when set, has the leader keep the HTTP API's
	// certificate and publish its CA (the HTTP API runs apart and only
	// reads the serving Secret).
	Certificates *certs.Options
}

// Setup registers the operator's metrics, the certificate issuer, the
// mirror's readiness check and every controller with mgr. With --mirror=required and no database it
// registers no controller at all: the operator must not run without
// durable history, and its readiness says why.
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) error {
	if o.Mirror.Clock == nil {
		o.Mirror.Clock = o.Controllers.Clock
	}
	// The mirror's state belongs to this manager alone; its gauges read it.
	health := mirrorctrl.NewHealth(o.Mirror.On(), o.Mirror.Clock)
	if err := metrics.Register(mgr.GetCache()); err != nil {
		return fmt.Errorf("failed to register metrics: %w", err)
	}
	if err := metrics.RegisterMirror(health); err != nil {
		return fmt.Errorf("failed to register the mirror's metrics: %w", err)
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("failed to create a client of the operator: %w", err)
	}
	if o.Certificates != nil {
		if err := certs.AddIssuer(mgr, cs, *o.Certificates); err != nil {
			return err
		}
	}
	if o.Controllers.Grants.ServiceAccount.Name == "" {
		o.Controllers.Grants.ServiceAccount = serviceAccount(ctx, cs)
	}
	if run, err := mirrorctrl.SetupReadiness(ctx, mgr, o.Mirror); err != nil || !run {
		return err
	}
	// Incident timelines only lose entries the mirror has written.
	o.Controllers.MirrorEnabled = o.Controllers.MirrorEnabled || o.Mirror.On()
	if err := controllers.SetupAll(ctx, mgr, o.Controllers); err != nil {
		return err
	}
	return mirrorctrl.Setup(ctx, mgr, o.Mirror, health)
}

// serviceAccount is the ServiceAccount the operator runs as, which a
// namespace binds the grant roles to (the refusals say so); empty when it
// runs as something else or cannot tell.
func serviceAccount(ctx context.Context, cs kubernetes.Interface) types.NamespacedName {
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		ctrl.LoggerFrom(ctx).Info("Could not tell which ServiceAccount the operator runs as; refusals will not name it", "error", err.Error())
		return types.NamespacedName{}
	}
	ns, name, err := serviceaccount.SplitUsername(r.Status.UserInfo.Username)
	if err != nil {
		return types.NamespacedName{}
	}
	return types.NamespacedName{Namespace: ns, Name: name}
}
