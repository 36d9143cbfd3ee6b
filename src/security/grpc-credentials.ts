import * as grpc from "@grpc/grpc-js"
import type { ServerTls } from "./material.js"

type CaListener = grpc.experimental.CaCertificateUpdateListener
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener

/**
 * gRPC server credentials from the receivers' TLS material that follow its rotation: grpc-js's
 * certificate-provider credentials (`experimental.createCertificateProviderServerCredentials`) update
 * the server's secure context whenever the provider reports new material, so new connections get the
 * new certificate without a restart. With a client CA, a client certificate it signed is required.
 */
export const rotatingServerCredentials = (material: ServerTls): grpc.ServerCredentials => {
  const caListeners = new Set<CaListener>()
  const identityListeners = new Set<IdentityListener>()
  material.onChange((pem) => {
    for (const l of identityListeners) l({ certificate: pem.cert, privateKey: pem.key })
    if (pem.ca !== undefined) for (const l of caListeners) l({ caCertificate: pem.ca })
  })
  const provider: grpc.experimental.CertificateProvider = {
    // The first material is given after the call that asked for it returns: grpc-js registers the
    // server's watcher only then, and a server that never heard of its material drops every connection.
    addCaCertificateListener: (l) => {
      caListeners.add(l)
      queueMicrotask(() => {
        const ca = material.current.ca
        if (ca !== undefined && caListeners.has(l)) l({ caCertificate: ca })
      })
    },
    removeCaCertificateListener: (l) => void caListeners.delete(l),
    addIdentityCertificateListener: (l) => {
      identityListeners.add(l)
      queueMicrotask(() => {
        if (identityListeners.has(l))
          l({ certificate: material.current.cert, privateKey: material.current.key })
      })
    },
    removeIdentityCertificateListener: (l) => void identityListeners.delete(l),
  }
  // grpc-js 1.14 hands its first argument to the identity side and its second (null: no client
  // certificates asked) to the CA side, whatever their names say: one provider serving both keeps
  // that detail out of the way.
  return grpc.experimental.createCertificateProviderServerCredentials(
    provider,
    material.mutual ? provider : (null as unknown as grpc.experimental.CertificateProvider),
    material.mutual,
  )
}
