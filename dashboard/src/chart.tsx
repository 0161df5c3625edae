// A live line chart (uPlot) of one or more series over time; sized to its container.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Series {
  label: string;
  values: (number | null)[];
}

export function Chart(props: { title: string; times: number[]; series: Series[]; unit: (v: number) => string; markers?: number[]; span?: string; xRange?: [number, number] }) {
  const markers = useRef<number[]>([]);
  markers.current = props.markers ?? [];
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const count = props.series.length;
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const colors = ['#2f6fed', '#e0702b', '#2a9d62'];
    const opts: uPlot.Options = {
      width: Math.max(240, el.clientWidth),
      height: 160,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,.2)' } },
        { stroke: 'currentColor', grid: { stroke: 'rgba(128,128,128,.2)' }, size: 70, values: (_u, vals) => vals.map((v) => props.unit(v)) },
      ],
      series: [{}, ...props.series.map((s, i) => ({ label: s.label, stroke: colors[i % colors.length], width: 2, value: (_u: uPlot, v: number | null) => (v == null ? '—' : props.unit(v)) }))],
      // Deploys, as dashed vertical lines.
      hooks: {
        draw: [
          (u: uPlot) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = 'rgba(128,128,128,.8)';
            ctx.setLineDash([4, 4]);
            for (const t of markers.current) {
              const x = Math.round(u.valToPos(t, 'x', true));
              if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
            }
            ctx.restore();
          },
        ],
      },
    };
    const u = new uPlot(opts, [props.times, ...props.series.map((s) => s.values)] as uPlot.AlignedData, el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(240, el.clientWidth), height: 160 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // The plot is rebuilt only when the number of series changes; data flows in below.
  }, [count]);
  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.setData([props.times, ...props.series.map((s) => s.values)] as uPlot.AlignedData);
    // A fixed span (usage over a chosen range), not one fitted to the points there are.
    if (props.xRange) u.setScale('x', { min: props.xRange[0], max: props.xRange[1] });
  }, [props.times, props.series, props.xRange?.[0], props.xRange?.[1]]);
  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div ref={box} role="img" aria-label={`${props.title} over ${props.span ?? 'the last minutes'}`} />
    </figure>
  );
}
