package httpapi

import (
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
)

// FormatFlagger answers 200 (allowed) or 403 (blocked), as Flagger's
// confirm-rollout webhook expects.
const FormatFlagger = "flagger"

// Gate is the release-gate JSON. An Argo Rollouts web metric reads it with
// jsonPath "{$.allowed}" and successCondition "result == true".
type Gate struct {
	Namespace       string           `json:"namespace"`
	Policy          string           `json:"policy"`
	Service         string           `json:"service"`
	Env             string           `json:"env"`
	Allowed         bool             `json:"allowed"`
	Decision        v1.GateDecision  `json:"decision"`
	Reason          string           `json:"reason"`
	Message         string           `json:"message,omitempty"`
	Stale           bool             `json:"stale"`
	Since           *metav1.Time     `json:"since,omitempty"`
	LastEvaluatedAt *metav1.Time     `json:"lastEvaluatedAt,omitempty"`
	Observed        *v1.ObservedSLIs `json:"observed,omitempty"`
	Bypass          *v1.BypassStatus `json:"bypass,omitempty"`
}

func (s *Server) serveGate(w http.ResponseWriter, r *http.Request) {
	key := client.ObjectKey{Namespace: r.PathValue("namespace"), Name: r.PathValue("slopolicy")}
	var p v1.SLOPolicy
	if err := s.reader.Get(r.Context(), key, &p); err != nil {
		if apierrors.IsNotFound(err) {
			WriteError(w, http.StatusNotFound, "SLOPolicy "+key.String()+" not found")
			return
		}
		ctrl.LoggerFrom(r.Context()).Error(err, "Failed to read an SLOPolicy", "slopolicy", key)
		WriteError(w, http.StatusServiceUnavailable, "cannot read SLOPolicy "+key.String())
		return
	}
	g := gateOf(&p, s.clock.Now())
	code := http.StatusOK
	if r.URL.Query().Get("format") == FormatFlagger && !g.Allowed {
		code = http.StatusForbidden
	}
	WriteJSON(w, code, g)
}
