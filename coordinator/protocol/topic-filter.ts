/**
 * The MQTT topic-filter algebra, re-exported so code that may import only coordinator/protocol
 * (tasks/, cloud-shim/, devices/) can check manifests the same way the broker authorizes traffic.
 * The implementation stays in the broker, where it is pure and tested.
 */
export { filterCovers, filtersIntersect, isValidTopicFilter, isValidTopicName, topicMatches } from '../broker/topic-filter.js'
