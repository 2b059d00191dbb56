//===- LossPlot.cpp - the loss curve as a PNG -----------------------------===//

#include "runtime/train/LossPlot.h"

#include "runtime/train/Checkpoint.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace vlora::train {
using runtime::Error;
using runtime::Status;

namespace {
constexpr int kWidth = 800, kHeight = 480;
constexpr int kLeft = 90, kRight = 24, kTop = 40, kBottom = 60;
constexpr int kFontScale = 2; // 5x7 glyphs drawn as 10x14

struct Glyph {
  char c;
  uint8_t rows[7]; // 5 bits per row, the most significant on the left
};
constexpr Glyph kFont[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
    {'s', {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E}},
    {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}},
    {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}},
};

struct Color {
  uint8_t r, g, b;
};
constexpr Color kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrid{225, 225, 225},
    kLine{31, 119, 180};

class Canvas {
public:
  Canvas() : pixels_(size_t(kWidth) * kHeight * 3, 255) {}
  void set(int x, int y, Color c) {
    if (x < 0 || y < 0 || x >= kWidth || y >= kHeight)
      return;
    uint8_t *p = &pixels_[(size_t(y) * kWidth + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void rect(int x0, int y0, int x1, int y1, Color c) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x)
        set(x, y, c);
  }
  /// Bresenham, `thick` pixels wide.
  void line(int x0, int y0, int x1, int y1, Color c, int thick = 1) {
    int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
    while (true) {
      rect(x0 - (thick - 1) / 2, y0 - (thick - 1) / 2, x0 + thick / 2, y0 + thick / 2, c);
      if (x0 == x1 && y0 == y1)
        break;
      int e2 = 2 * err;
      if (e2 >= dy)
        err += dy, x0 += sx;
      if (e2 <= dx)
        err += dx, y0 += sy;
    }
  }
  static int textWidth(const std::string &s) {
    return s.empty() ? 0 : int(s.size()) * 6 * kFontScale - kFontScale;
  }
  void text(int x, int y, const std::string &s, Color c) {
    for (char ch : s) {
      for (const Glyph &g : kFont) {
        if (g.c != ch)
          continue;
        for (int row = 0; row < 7; ++row)
          for (int col = 0; col < 5; ++col)
            if (g.rows[row] & (0x10 >> col))
              rect(x + col * kFontScale, y + row * kFontScale, x + col * kFontScale + kFontScale - 1,
                   y + row * kFontScale + kFontScale - 1, c);
      }
      x += 6 * kFontScale;
    }
  }
  const std::vector<uint8_t> &pixels() const { return pixels_; }

private:
  std::vector<uint8_t> pixels_;
};

std::string tickLabel(double v, double spacing) {
  if (std::fabs(v) < spacing * 1e-9)
    v = 0;
  char buf[32];
  double magnitude = std::fabs(v);
  if (magnitude != 0 && (magnitude >= 1e6 || magnitude < 1e-3)) {
    std::snprintf(buf, sizeof(buf), "%.2g", v);
  } else {
    int decimals = spacing >= 1 ? 0 : int(std::ceil(-std::log10(spacing) - 1e-9));
    std::snprintf(buf, sizeof(buf), "%.*f", std::min(decimals, 6), v);
  }
  return buf;
}
} // namespace

std::vector<double> niceTicks(double lo, double hi, int target) {
  if (!(hi > lo))
    hi = lo + 1;
  double raw = (hi - lo) / std::max(1, target);
  double power = std::pow(10.0, std::floor(std::log10(raw)));
  double spacing = power;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    spacing = m * power;
    if (spacing >= raw)
      break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / spacing - 1e-9) * spacing; t <= hi + spacing * 1e-9;
       t += spacing)
    ticks.push_back(t);
  return ticks;
}

Status writeLossPlot(const std::string &path,
                     const std::vector<std::pair<double, double>> &points) {
  std::vector<std::pair<double, double>> pts;
  for (const auto &p : points)
    if (std::isfinite(p.first) && std::isfinite(p.second))
      pts.push_back(p);
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (!pts.empty()) {
    x0 = x1 = pts.front().first;
    y0 = y1 = pts.front().second;
    for (const auto &[x, y] : pts) {
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  }
  if (x1 <= x0)
    x0 -= 1, x1 += 1;
  if (y1 <= y0) {
    double pad = std::max(std::fabs(y0) * 0.1, 1e-3);
    y0 -= pad, y1 += pad;
  }
  // The axes run over whole tick intervals.
  std::vector<double> xt = niceTicks(x0, x1, 8), yt = niceTicks(y0, y1, 6);
  double xs = xt.size() > 1 ? xt[1] - xt[0] : 1, ys = yt.size() > 1 ? yt[1] - yt[0] : 1;
  x0 = std::min(x0, std::floor(x0 / xs) * xs), x1 = std::max(x1, std::ceil(x1 / xs) * xs);
  y0 = std::min(y0, std::floor(y0 / ys) * ys), y1 = std::max(y1, std::ceil(y1 / ys) * ys);
  xt = niceTicks(x0, x1, 8), yt = niceTicks(y0, y1, 6);

  int plotW = kWidth - kLeft - kRight, plotH = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + int(std::lround((x - x0) / (x1 - x0) * plotW)); };
  auto py = [&](double y) {
    return kTop + plotH - int(std::lround((y - y0) / (y1 - y0) * plotH));
  };

  Canvas c;
  c.rect(0, 0, kWidth - 1, kHeight - 1, kWhite);
  for (double t : xt) {
    c.line(px(t), kTop, px(t), kTop + plotH, kGrid);
    c.line(px(t), kTop + plotH, px(t), kTop + plotH + 5, kBlack);
    std::string label = tickLabel(t, xs);
    c.text(px(t) - Canvas::textWidth(label) / 2, kTop + plotH + 10, label, kBlack);
  }
  for (double t : yt) {
    c.line(kLeft, py(t), kLeft + plotW, py(t), kGrid);
    c.line(kLeft - 5, py(t), kLeft, py(t), kBlack);
    std::string label = tickLabel(t, ys);
    c.text(kLeft - 10 - Canvas::textWidth(label), py(t) - 7, label, kBlack);
  }
  c.line(kLeft, kTop, kLeft, kTop + plotH, kBlack);
  c.line(kLeft, kTop + plotH, kLeft + plotW, kTop + plotH, kBlack);
  c.text(kLeft + plotW / 2 - Canvas::textWidth("step") / 2, kHeight - 22, "step", kBlack);
  c.text(8, 8, "loss", kBlack);
  for (size_t i = 0; i + 1 < pts.size(); ++i)
    c.line(px(pts[i].first), py(pts[i].second), px(pts[i + 1].first), py(pts[i + 1].second),
           kLine, 2);
  if (pts.size() <= 60)
    for (const auto &[x, y] : pts)
      c.rect(px(x) - 2, py(y) - 2, px(x) + 2, py(y) + 2, kLine);

  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = kWidth;
  image.height = kHeight;
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&image, nullptr, &size, 0, c.pixels().data(), 0, nullptr))
    return Error("cannot encode " + path + ": " + image.message);
  std::string bytes(size, '\0');
  if (!png_image_write_to_memory(&image, bytes.data(), &size, 0, c.pixels().data(), 0,
                                 nullptr))
    return Error("cannot encode " + path + ": " + image.message);
  bytes.resize(size);
  return writeFileAtomic(path, bytes);
}

} // namespace vlora::train
