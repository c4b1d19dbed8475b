/* An int8 CNN as plain C, with no Python, torch or heap (efflib.export_c). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include "weights.h"

static void step0(const uint8_t *in, uint8_t *out) {  /* (1,8,8) -> (16,8,8) */
    for (int m = 0; m < 16; m++)
        for (int p = 0; p < 8; p++)
            for (int q = 0; q < 8; q++) {
                int32_t acc = B0[m];
                for (int c = 0; c < 1; c++)
                    for (int r = 0; r < 3; r++) {
                        int h = p * 1 + r - 1;
                        if (h < 0 || h >= 8) continue;
                        for (int s = 0; s < 3; s++) {
                            int w = q * 1 + s - 1;
                            if (w < 0 || w >= 8) continue;
                            acc += ((int32_t)in[(c * 8 + h) * 8 + w] - 78)
                                   * (int32_t)W0[((m * 1 + c) * 3 + r) * 3 + s];
                        }
                    }
                int total = 31 + SH0[m];
                int64_t y = ((int64_t)acc * M0[m] + ((int64_t)1 << (total - 1))) >> total;
                y += 0;
                out[(m * 8 + p) * 8 + q] = (uint8_t)(y < 0 ? 0 : (y > 255 ? 255 : y));
            }
}

static void step1(const uint8_t *in, uint8_t *out) {  /* (16,8,8) -> (32,8,8) */
    for (int m = 0; m < 32; m++)
        for (int p = 0; p < 8; p++)
            for (int q = 0; q < 8; q++) {
                int32_t acc = B1[m];
                for (int c = 0; c < 16; c++)
                    for (int r = 0; r < 3; r++) {
                        int h = p * 1 + r - 1;
                        if (h < 0 || h >= 8) continue;
                        for (int s = 0; s < 3; s++) {
                            int w = q * 1 + s - 1;
                            if (w < 0 || w >= 8) continue;
                            acc += ((int32_t)in[(c * 8 + h) * 8 + w] - 0)
                                   * (int32_t)W1[((m * 16 + c) * 3 + r) * 3 + s];
                        }
                    }
                int total = 31 + SH1[m];
                int64_t y = ((int64_t)acc * M1[m] + ((int64_t)1 << (total - 1))) >> total;
                y += 0;
                out[(m * 8 + p) * 8 + q] = (uint8_t)(y < 0 ? 0 : (y > 255 ? 255 : y));
            }
}

static void step2(const uint8_t *in, uint8_t *out) {  /* max pool 2x2 */
    for (int c = 0; c < 32; c++)
        for (int p = 0; p < 4; p++)
            for (int q = 0; q < 4; q++) {
                uint8_t best = 0;
                for (int r = 0; r < 2; r++)
                    for (int s = 0; s < 2; s++) {
                        uint8_t v = in[(c * 8 + p * 2 + r) * 8 + q * 2 + s];
                        if (v > best) best = v;
                    }
                out[(c * 4 + p) * 4 + q] = best;
            }
}

static void step3(const uint8_t *in, uint8_t *out) {  /* (32,4,4) -> (64,4,4) */
    for (int m = 0; m < 64; m++)
        for (int p = 0; p < 4; p++)
            for (int q = 0; q < 4; q++) {
                int32_t acc = B3[m];
                for (int c = 0; c < 32; c++)
                    for (int r = 0; r < 3; r++) {
                        int h = p * 1 + r - 1;
                        if (h < 0 || h >= 4) continue;
                        for (int s = 0; s < 3; s++) {
                            int w = q * 1 + s - 1;
                            if (w < 0 || w >= 4) continue;
                            acc += ((int32_t)in[(c * 4 + h) * 4 + w] - 0)
                                   * (int32_t)W3[((m * 32 + c) * 3 + r) * 3 + s];
                        }
                    }
                int total = 31 + SH3[m];
                int64_t y = ((int64_t)acc * M3[m] + ((int64_t)1 << (total - 1))) >> total;
                y += 0;
                out[(m * 4 + p) * 4 + q] = (uint8_t)(y < 0 ? 0 : (y > 255 ? 255 : y));
            }
}

static void step4(const uint8_t *in, uint8_t *out) {  /* global average, halves to even */
    for (int c = 0; c < 64; c++) {
        int32_t t = 0;
        for (int k = 0; k < 16; k++) t += (int32_t)in[c * 16 + k] - 0;
        int32_t d = t / 16;
        if (t % 16 != 0 && t < 0) d -= 1;           /* floor division */
        int32_t twice = 2 * (t - d * 16);
        int32_t up = twice > 16 || (twice == 16 && (d & 1));
        out[c] = (uint8_t)(d + up + 0);
    }
}

static void step5(const uint8_t *in, uint8_t *out) {  /* flatten */
    for (int k = 0; k < 64; k++) out[k] = in[k];
}

static void step6(const uint8_t *in, uint8_t *out) {  /* (64,1,1) -> (10,1,1) */
    for (int m = 0; m < 10; m++)
        for (int p = 0; p < 1; p++)
            for (int q = 0; q < 1; q++) {
                int32_t acc = B6[m];
                for (int c = 0; c < 64; c++)
                    for (int r = 0; r < 1; r++) {
                        int h = p * 1 + r - 0;
                        if (h < 0 || h >= 1) continue;
                        for (int s = 0; s < 1; s++) {
                            int w = q * 1 + s - 0;
                            if (w < 0 || w >= 1) continue;
                            acc += ((int32_t)in[(c * 1 + h) * 1 + w] - 0)
                                   * (int32_t)W6[((m * 64 + c) * 1 + r) * 1 + s];
                        }
                    }
                int total = 31 + SH6[m];
                int64_t y = ((int64_t)acc * M6[m] + ((int64_t)1 << (total - 1))) >> total;
                y += 105;
                out[(m * 1 + p) * 1 + q] = (uint8_t)(y < 0 ? 0 : (y > 255 ? 255 : y));
            }
}

static float image[64];
static uint8_t a[2048], b[2048];

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s IMAGES.f32\n", argv[0]); return 2; }
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    const float inv_scale = (1.0f / 0.0104094622656703f);
    while (fread(image, sizeof(float), 64, f) == 64) {
        for (int k = 0; k < 64; k++) {
            float v = rintf(image[k] * inv_scale) + 78;
            a[k] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
        }
    step0(a, b);
    step1(b, a);
    step2(a, b);
    step3(b, a);
    step4(a, b);
    step5(b, a);
    step6(a, b);
        int best = 0;
        for (int k = 1; k < 10; k++) if (b[k] > b[best]) best = k;
        printf("%d", best);
        for (int k = 0; k < 10; k++) printf(" %d", b[k]);
        printf("\n");
    }
    fclose(f);
    return 0;
}
