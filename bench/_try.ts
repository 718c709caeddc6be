process.setSourceMapsEnabled(false);
const { clusterBench } = await import("./cluster.js");
console.log(
  JSON.stringify(await clusterBench(), (k, v) =>
    typeof v === "number" ? Math.round(v * 100) / 100 : v,
  ),
);
