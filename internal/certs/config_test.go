package certs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/alertbridge/alertbridge/internal/certs"
	"github.com/alertbridge/alertbridge/internal/testenv"
)

// shippedPieces finds, in a built kustomization, the manager's arguments,
// the names the TLS Role lets it keep, and the API's Service.
func shippedPieces(g Gomega, objs []*unstructured.Unstructured) (args, roleNames []string, service string) {
	for _, u := range objs {
		switch {
		case u.GetKind() == "Deployment" && u.GetName() == "alertbridge-manager":
			cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			g.Expect(cs).NotTo(BeEmpty())
			a, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
			args = a
		case u.GetKind() == "Role" && u.GetName() == "alertbridge-api-tls":
			rules, _, _ := unstructured.NestedSlice(u.Object, "rules")
			for _, r := range rules {
				n, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resourceNames")
				roleNames = append(roleNames, n...)
			}
		case u.GetKind() == "Service":
			service = u.GetName()
		}
	}
	return args, roleNames, service
}

func argValue(args []string, flag string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// TestShippedConfigAgrees: the Secret the Deployment serves is the one the
// Role names, and the Service is the one whose names the certificate
// carries by default.
func TestShippedConfigAgrees(t *testing.T) {
	g := NewWithT(t)
	objs, err := testenv.Build(filepath.Join(testenv.Root(), testenv.DefaultInstall))
	g.Expect(err).NotTo(HaveOccurred())
	args, roleNames, service := shippedPieces(g, objs)
	secret, ok := argValue(args, "--api-tls-secret")
	g.Expect(ok).To(BeTrue(), "the Deployment names no --api-tls-secret: %v", args)
	g.Expect(roleNames).To(Equal([]string{secret}))
	g.Expect(service).To(Equal("alertbridge-api"))
	g.Expect(args).NotTo(ContainElement(HavePrefix("--api-insecure")), "the shipped API serves plain HTTP")
	g.Expect(args).NotTo(ContainElement(HavePrefix("--api-tls-cert-file")), "the shipped API reads a mounted file")
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
	args, roleNames, service := shippedPieces(g, objs)
	g.Expect(args).To(ContainElement("--api-tls-manage-secret=false"))
	var issued []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == "Certificate" && u.GetName() == roleNames[0] {
			issued = append(issued, u)
		}
	}
	g.Expect(issued).To(HaveLen(1))
	c := issued[0]
	secretName, _, _ := unstructured.NestedString(c.Object, "spec", "secretName")
	g.Expect(secretName).To(Equal(roleNames[0]))
	dnsNames, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
	g.Expect(dnsNames).To(Equal(certs.ServiceNames(service, c.GetNamespace())))
}
