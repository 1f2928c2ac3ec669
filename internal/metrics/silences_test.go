package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1 "github.com/alertbridge/alertbridge/api/v1alpha1"
	"github.com/alertbridge/alertbridge/internal/kube"
	"github.com/alertbridge/alertbridge/test/integration/testbuild"
)

// TestSilencedGauges checks the silenced Alerts (in play, Silenced=True)
// and the Silences by state, read from the cache at scrape time.
func TestSilencedGauges(t *testing.T) {
	silenced := []metav1.Condition{{Type: v1.AlertConditionSilenced, Status: metav1.ConditionTrue, Reason: v1.ReasonSilenceActive}}
	ended := []metav1.Condition{{Type: v1.AlertConditionSilenced, Status: metav1.ConditionFalse, Reason: v1.ReasonSilenceEnded}}
	alert := func(name string, phase v1.AlertPhase, conds []metav1.Condition) *v1.Alert {
		return testbuild.MakeAlert(name, "prod").Phase(phase).Conditions(conds...).Obj()
	}
	sil := func(name string, state v1.SilenceState) *v1.Silence {
		return testbuild.MakeSilence(name, "prod").State(state).Obj()
	}
	c := fake.NewClientBuilder().WithScheme(kube.NewScheme()).WithObjects(
		alert("a", v1.AlertNew, silenced), alert("b", v1.AlertNew, silenced), alert("c", v1.AlertNew, ended),
		alert("d", v1.AlertFailed, silenced), alert("e", v1.AlertAcked, silenced), alert("f", v1.AlertProcessing, nil),
		sil("s1", v1.SilenceActive), sil("s2", v1.SilenceActive), sil("s3", v1.SilenceExpired), sil("s4", ""),
	).Build()

	phases := &alertsByPhase{reader: c,
		desc:     prometheus.NewDesc("alertbridge_alerts", "Alerts in the cluster by phase.", []string{"phase"}, nil),
		silenced: prometheus.NewDesc("alertbridge_alerts_silenced", "Silenced.", []string{"phase"}, nil)}
	if err := testutil.CollectAndCompare(phases, strings.NewReader(`
# HELP alertbridge_alerts_silenced Silenced.
# TYPE alertbridge_alerts_silenced gauge
alertbridge_alerts_silenced{phase="Failed"} 1
alertbridge_alerts_silenced{phase="New"} 2
alertbridge_alerts_silenced{phase="Processing"} 0
`), "alertbridge_alerts_silenced"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(phases, strings.NewReader(`
# HELP alertbridge_alerts Alerts in the cluster by phase.
# TYPE alertbridge_alerts gauge
alertbridge_alerts{phase="Acked"} 1
alertbridge_alerts{phase="Deduplicated"} 0
alertbridge_alerts{phase="Failed"} 1
alertbridge_alerts{phase="New"} 3
alertbridge_alerts{phase="Processing"} 1
`), "alertbridge_alerts"); err != nil {
		t.Error(err)
	}
	states := &silencesByState{reader: c, desc: prometheus.NewDesc("alertbridge_silences", "Silences.", []string{"state"}, nil)}
	if err := testutil.CollectAndCompare(states, strings.NewReader(`
# HELP alertbridge_silences Silences.
# TYPE alertbridge_silences gauge
alertbridge_silences{state="Active"} 2
alertbridge_silences{state="Expired"} 1
alertbridge_silences{state="Invalid"} 0
alertbridge_silences{state="Pending"} 0
`)); err != nil {
		t.Error(err)
	}
}
