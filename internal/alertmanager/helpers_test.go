package alertmanager

import (
	"time"

	"github.com/prometheus/alertmanager/template"
)

func dataWith(labels, annotations map[string]string) *template.Data {
	return &template.Data{
		Receiver: "alertbridge",
		Status:   StatusFiring,
		Alerts: template.Alerts{{
			Status:      StatusFiring,
			Labels:      labels,
			Annotations: annotations,
			StartsAt:    time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
			Fingerprint: "abc",
		}},
	}
}
