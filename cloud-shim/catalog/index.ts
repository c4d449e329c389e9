export { Catalog, type CatalogOptions, type BundleSummary, type UploadResult } from './catalog.js'
export type { BundleVersion } from './catalog-store.js'
export { parseRange, type ByteRange } from './range.js'
export { compareVersions } from './semver.js'
