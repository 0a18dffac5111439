package pageapi

// Heatmaps and secondary locations (docs/remote-storage.md, Heatmaps and
// secondary locations).
const (
	// RouteHeatmapUpload uploads the attached location's heatmap now:
	// 200 once uploaded; 412 for a location that does not upload
	// (AttachedStale, Secondary, or no remote storage).
	RouteHeatmapUpload = "POST /v1/tenant/{tenant_shard_id}/heatmap_upload"
	// RouteSecondaryDownload makes a Secondary location download the
	// layers of the newest heatmap, waiting up to the query parameter
	// wait_ms: 200 with SecondaryProgress once that download is complete,
	// 202 with the progress so far while it is still running; 412 for a
	// location that is not Secondary.
	RouteSecondaryDownload = "POST /v1/tenant/{tenant_shard_id}/secondary/download"
	// SecondaryDownloadWaitParam is RouteSecondaryDownload's query
	// parameter: how long to wait for the download, in milliseconds.
	SecondaryDownloadWaitParam = "wait_ms"
)

// SecondaryProgress is a secondary location's download progress: of the
// layers the heatmap (last modified at HeatmapMtime, RFC 3339; nil while
// none was read) names, how many and how many bytes are on local disk.
type SecondaryProgress struct {
	HeatmapMtime     *string `json:"heatmap_mtime"`
	LayersDownloaded uint64  `json:"layers_downloaded"`
	LayersTotal      uint64  `json:"layers_total"`
	BytesDownloaded  uint64  `json:"bytes_downloaded"`
	BytesTotal       uint64  `json:"bytes_total"`
}

// Complete reports whether every layer named is downloaded.
func (p SecondaryProgress) Complete() bool {
	return p.LayersDownloaded == p.LayersTotal && p.BytesDownloaded == p.BytesTotal
}
