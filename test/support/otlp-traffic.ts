/** OTLP/JSON bodies for tests that need traffic: `series` gauges of one metric, one datapoint each. */
export const gaugeBody = (
  metric: string,
  series: number,
  labels: Record<string, string> = {},
  from = 0,
): string =>
  JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: [] },
        scopeMetrics: [
          {
            metrics: [
              {
                name: metric,
                gauge: {
                  dataPoints: Array.from({ length: series }, (_, i) => ({
                    attributes: [
                      { key: "id", value: { stringValue: `s${from + i}` } },
                      ...Object.entries(labels).map(([key, v]) => ({ key, value: { stringValue: v } })),
                    ],
                    timeUnixNano: `${BigInt(Date.now()) * 1_000_000n}`,
                    asInt: "1",
                  })),
                },
              },
            ],
          },
        ],
      },
    ],
  })

/** POSTs an OTLP/JSON body to an OTLP/HTTP receiver; resolves to the status code. */
export const postOtlp = async (port: number, body: string): Promise<number> => {
  const res = await fetch(`http://127.0.0.1:${port}/v1/metrics`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  })
  await res.arrayBuffer()
  return res.status
}
