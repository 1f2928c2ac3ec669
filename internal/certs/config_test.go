package certs_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/test/integration/testenv"
)

// shipped is what a built kustomization says of the certificate.
type shipped struct {
	// managerArgs and apiArgs are the two Deployments' arguments.
	managerArgs, apiArgs []string
	// apiSecrets are the Secrets the HTTP API's Role names; issuerSecrets
	// and issuerConfigMaps those the manager's alertbridge-certificates
	// Role names.
	apiSecrets, issuerSecrets, issuerConfigMaps []string
	service                                     string
}

// shippedPieces reads a built kustomization.
func shippedPieces(g Gomega, objs []*unstructured.Unstructured) shipped {
	var p shipped
	names := func(u *unstructured.Unstructured, resource string) []string {
		var out []string
		rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
		for _, r := range rules {
			res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources")
			n, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resourceNames")
			if slices.Contains(res, resource) {
				out = append(out, n...)
			}
		}
		return out
	}
	args := func(u *unstructured.Unstructured) []string {
		cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		g.Expect(cs).NotTo(BeEmpty())
		a, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
		return a
	}
	for _, u := range objs {
		switch {
		case u.GetKind() == "Deployment" && u.GetName() == "alertbridge-manager":
			p.managerArgs = args(u)
		case u.GetKind() == "Deployment" && u.GetName() == "alertbridge-api":
			p.apiArgs = args(u)
		case u.GetKind() == "Role" && u.GetName() == "alertbridge-api-tls":
			p.apiSecrets = names(u, "secrets")
		case u.GetKind() == "Role" && u.GetName() == "alertbridge-certificates":
			p.issuerSecrets, p.issuerConfigMaps = names(u, "secrets"), names(u, "configmaps")
		case u.GetKind() == "Service" && u.GetName() == "alertbridge-api":
			p.service = u.GetName()
		}
	}
	return p
}

func argValue(args []string, flag string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestShippedConfigAgrees: the Secret the HTTP API serves is the one the
// manager issues, the HTTP API's Role names it alone, the manager's Role
// names it, the CA's Secret and the CA ConfigMap (their defaults), and the
// Service is the one whose names the certificate carries by default.
func TestShippedConfigAgrees(t *testing.T) {
	g := NewWithT(t)
	objs, err := testenv.Build(filepath.Join(testenv.Root(), testenv.DefaultInstall))
	g.Expect(err).NotTo(HaveOccurred())
	p := shippedPieces(g, objs)
	secret, ok := argValue(p.apiArgs, "--api-tls-secret")
	g.Expect(ok).To(BeTrue(), "the API's Deployment names no --api-tls-secret: %v", p.apiArgs)
	issued, ok := argValue(p.managerArgs, "--api-tls-secret")
	g.Expect(ok).To(BeTrue(), "the manager's Deployment names no --api-tls-secret: %v", p.managerArgs)
	g.Expect(issued).To(Equal(secret))
	g.Expect(p.apiSecrets).To(Equal([]string{secret}))
	g.Expect(p.issuerSecrets).To(ConsistOf(secret, caKey.Name))
	g.Expect(p.issuerConfigMaps).To(Equal([]string{caMap.Name}))
	g.Expect(p.service).To(Equal("alertbridge-api"))
	g.Expect(p.apiArgs).NotTo(ContainElement(HavePrefix("--api-insecure")), "the shipped API serves plain HTTP")
	g.Expect(p.apiArgs).NotTo(ContainElement(HavePrefix("--api-tls-cert-file")), "the shipped API reads a mounted file")
	g.Expect(secret).To(Equal(key.Name), "the Secret these tests keep is not the shipped one")
}

// TestCertManagerComponent: the optional component has cert-manager issue
// the Secret the operator serves, for the names the operator would use, and
// stops the operator from managing it.
func TestCertManagerComponent(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	root := testenv.Root()
	// Kustomize takes only relative paths to other kustomizations.
	rel := func(p ...string) string {
		r, err := filepath.Rel(dir, filepath.Join(append([]string{root}, p...)...))
		g.Expect(err).NotTo(HaveOccurred())
		return r
	}
	g.Expect(os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(
		"resources: ["+rel("config", "default")+"]\n"+
			"components: ["+rel("config", "components", "cert-manager")+"]\n"), 0o600)).To(Succeed())
	objs, err := testenv.Build(dir)
	g.Expect(err).NotTo(HaveOccurred())
	p := shippedPieces(g, objs)
	g.Expect(p.managerArgs).To(ContainElement("--api-tls-manage-secret=false"))
	var issued []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == "Certificate" && u.GetName() == p.apiSecrets[0] {
			issued = append(issued, u)
		}
	}
	g.Expect(issued).To(HaveLen(1))
	c := issued[0]
	secretName, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
	g.Expect(secretName).To(Equal(p.apiSecrets[0]))
	dnsNames, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
	g.Expect(dnsNames).To(Equal(certs.ServiceNames(p.service, c.GetNamespace())))
}
