import * as grpc from "@grpc/grpc-js"
import {
  METRICS_EXPORT_PATH,
  type MetricsExportMethod,
  metricsServiceDefinition,
} from "../../src/protocols/otlp/grpc.js"

/**
 * A `MetricsService/Export` client that sends the bytes it is given and returns the bytes it gets:
 * for requests our own encoder would never write (bombs, corrupt or hand-built messages).
 */
export const RawMetricsClient = grpc.makeGenericClientConstructor(
  {
    export: {
      path: METRICS_EXPORT_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  },
  "MetricsService",
)

/** The service definition for clients (the hand-written codec as their (de)serializer). */
export const MetricsServiceDefinition: { readonly export: MetricsExportMethod } = metricsServiceDefinition()
