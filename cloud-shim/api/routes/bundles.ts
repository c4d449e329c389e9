import type { Route } from '../../../coordinator/api/index.js'
import { NotFoundError } from '../../../coordinator/core/errors.js'
import type { BundleVersion, Catalog } from '../../catalog/index.js'
import { iso, route, type Action } from '../respond.js'
import { serveImmutableFile } from '../serve-file.js'

const bundleView = (v: BundleVersion): Record<string, unknown> => ({ ...v, uploadedAt: iso(v.uploadedAt) })

/**
 * The bundle catalog: upload (the body is the bundle file), list, versions of a name, one version
 * with its manifest, and download by digest with Range support.
 */
export function bundleRoutes(catalog: Catalog): Route[] {
  const download: Action = ({ params: [digest = ''], req }) => {
    const file = catalog.file(digest)
    if (file === undefined) throw new NotFoundError(`no bundle with digest ${JSON.stringify(digest)}`)
    return (res) => serveImmutableFile(req, res, file.path, digest)
  }
  return [
    // Coordinators on other machines download here with no admin token: the digest is the capability.
    { ...route(/^\/v1\/bundles\/by-digest\/([^/]+)$/, { GET: download, HEAD: download }), public: true },
    route(/^\/v1\/bundles$/, {
      GET: () => [200, { bundles: catalog.list().map((s) => ({ ...s, latest: bundleView(s.latest) })) }],
      POST: async ({ body }) => {
        const { bundle, created } = await catalog.upload(new Uint8Array(body.buffer, body.byteOffset, body.length))
        return [created ? 201 : 200, { ...bundleView(bundle), created }]
      },
    }, {
      accepts: ['application/octet-stream'],
      // The API stops reading a body at its cap, which is the bundle limit once that passes 128 KiB.
      tooLarge: () => [413, { code: 'COORD_BUNDLE_TOO_LARGE', message: 'bundle is larger than the limit (bundles.maxBundleBytes)' }],
    }),
    route(/^\/v1\/bundles\/([^/]+)$/, {
      GET: ({ params: [name = ''] }) => {
        const versions = catalog.versions(name)
        if (versions.length === 0) throw new NotFoundError(`no bundle named ${JSON.stringify(name)}`)
        return [200, { name, versions: versions.map(bundleView) }]
      },
    }),
    route(/^\/v1\/bundles\/([^/]+)\/([^/]+)$/, {
      GET: ({ params: [name = '', version = ''] }) => {
        const v = catalog.get(name, version)
        if (v === undefined) throw new NotFoundError(`no bundle ${name}@${version}`)
        return [200, { ...bundleView(v), manifest: catalog.manifest(name, version) }]
      },
    }),
  ]
}
