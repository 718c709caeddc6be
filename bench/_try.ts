process.setSourceMapsEnabled(false);
const { httpBench } = await import("./http.js");
console.log(
  JSON.stringify(await httpBench(), (k, v) =>
    typeof v === "number" ? Math.round(v * 100) / 100 : v,
  ),
);
