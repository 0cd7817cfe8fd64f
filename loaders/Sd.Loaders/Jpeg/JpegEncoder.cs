using System.Buffers.Binary;
using Sd.Loaders.Png;

namespace Sd.Loaders.Jpeg;

/// <summary>
/// Writes a baseline JPEG as Pillow 9.4 does with libjpeg-turbo's defaults, byte for byte: gray pictures as one
/// component, color ones as YCbCr 4:2:0 (libjpeg's fixed-point conversion, 2x2 averages with its alternating 1, 2
/// rounding bias), the islow DCT, the standard tables scaled by the quality, and the standard Huffman codes. Edges are
/// padded as libjpeg pads them: the last column and row repeated to whole blocks (chroma after subsampling), and
/// blocks wholly outside the picture coded flat with the DC term of the block before.
/// Reference: libjpeg's jccolor.c, jcsample.c (h2v2_downsample), jcprepct.c, jccoefct.c (compress_data), jcmarker.c.
/// </summary>
internal static class JpegEncoder
{
    /// <summary>libjpeg's largest width or height (JPEG_MAX_DIMENSION).</summary>
    public const int MaxDimension = 65500;

    /// <summary>Bytes of the largest plane written for a picture: its samples padded to whole MCUs (a gray picture's
    /// to whole blocks), which the checks keep within an array.</summary>
    public static long PlaneBytes(int width, int height, int channels)
    {
        int unit = channels == 1 ? 8 : 16;
        return (long)((width + unit - 1) / unit * unit) * ((height + unit - 1) / unit * unit);
    }

    /// <summary>One component: its samples padded to whole blocks, and its sampling factors.</summary>
    private sealed record Plane(byte[] Samples, int Stride, int BlocksWide, int BlocksHigh, int Factor);

    /// <summary>
    /// Writes SOI, then <paramref name="app"/> (a whole APP segment: JFIF, or the EXIF that takes its place), the
    /// tables, the frame, one interleaved scan and EOI. RGBA is written as its RGB (alpha dropped, as A1111's
    /// convert("RGB") before saving).
    /// </summary>
    public static void Write(Stream output, PngImage image, int quality, ReadOnlySpan<byte> app)
    {
        bool color = image.Channels >= 3;
        Plane[] planes = color ? ColorPlanes(image) : [GrayPlane(image)];
        output.Write([0xFF, JpegMarkers.Soi]);
        output.Write(app);
        var divisors = new uint[color ? 2 : 1][];
        for (int t = 0; t < divisors.Length; t++)
        {
            ushort[] quantization = JpegStandardTables.Quantization(t, quality);
            divisors[t] = IslowFdct.Divisors(quantization);
            WriteQuantization(output, t, quantization);
        }
        WriteFrame(output, image.Width, image.Height, planes);
        WriteHuffman(output, 0x00, JpegStandardTables.LuminanceDc);
        WriteHuffman(output, 0x10, JpegStandardTables.LuminanceAc);
        if (color)
        {
            WriteHuffman(output, 0x01, JpegStandardTables.ChrominanceDc);
            WriteHuffman(output, 0x11, JpegStandardTables.ChrominanceAc);
        }
        WriteScanHeader(output, planes.Length);
        WriteScan(output, planes, divisors);
        output.Write([0xFF, JpegMarkers.Eoi]);
    }

    /// <summary>The JFIF APP0 segment libjpeg writes by default: version 1.01, no density unit, 1:1, no thumbnail.</summary>
    public static ReadOnlySpan<byte> Jfif => [0xFF, 0xE0, 0, 16, (byte)'J', (byte)'F', (byte)'I', (byte)'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0];

    private static Plane GrayPlane(PngImage image)
    {
        int blocksWide = (image.Width + 7) / 8, blocksHigh = (image.Height + 7) / 8, stride = blocksWide * 8;
        var samples = new byte[stride * blocksHigh * 8];
        for (int y = 0; y < blocksHigh * 8; y++)
        {
            int row = Math.Min(y, image.Height - 1) * image.Width;
            for (int x = 0; x < stride; x++)
                samples[y * stride + x] = image.Pixels[row + Math.Min(x, image.Width - 1)];
        }
        return new Plane(samples, stride, blocksWide, blocksHigh, 1);
    }

    /// <summary>
    /// Y at full size and Cb, Cr at half: libjpeg converts each pixel (16-bit fixed point, Cb and Cr rounded with
    /// 0.5 - epsilon so they never pass 255), repeats the last column to the chroma blocks' width x 2 and the last row
    /// to whole blocks, averages 2x2 (an odd last row with itself), then repeats the last chroma row to whole blocks.
    /// </summary>
    private static Plane[] ColorPlanes(PngImage image)
    {
        int width = image.Width, height = image.Height, channels = image.Channels;
        int mcusWide = (width + 15) / 16, mcusHigh = (height + 15) / 16;
        int stride = mcusWide * 16, rows = mcusHigh * 16;
        var ycc = new byte[3][];
        for (int c = 0; c < 3; c++)
            ycc[c] = new byte[stride * rows];
        for (int y = 0; y < rows; y++)
        {
            int row = Math.Min(y, height - 1) * width;
            for (int x = 0; x < stride; x++)
            {
                int p = (row + Math.Min(x, width - 1)) * channels;
                int r = image.Pixels[p], g = image.Pixels[p + 1], b = image.Pixels[p + 2];
                int at = y * stride + x;
                ycc[0][at] = (byte)((19595 * r + 38470 * g + 7471 * b + Half) >> 16);
                ycc[1][at] = (byte)((-11059 * r - 21709 * g + 32768 * b + ChromaOffset) >> 16);
                ycc[2][at] = (byte)((32768 * r - 27439 * g - 5329 * b + ChromaOffset) >> 16);
            }
        }
        var planes = new Plane[3];
        planes[0] = new Plane(ycc[0], stride, (width + 7) / 8, (height + 7) / 8, 2);
        int chromaStride = stride / 2, chromaRows = (height + 1) / 2;
        for (int c = 1; c < 3; c++)
        {
            var samples = new byte[chromaStride * rows / 2];
            for (int y = 0; y < rows / 2; y++)
            {
                int top = Math.Min(y, chromaRows - 1) * 2 * stride;
                for (int x = 0, bias = 1; x < chromaStride; x++, bias ^= 3)
                {
                    int at = top + 2 * x;
                    samples[y * chromaStride + x] = (byte)((ycc[c][at] + ycc[c][at + 1] + ycc[c][at + stride] + ycc[c][at + stride + 1] + bias) >> 2);
                }
            }
            planes[c] = new Plane(samples, chromaStride, mcusWide, mcusHigh, 1);
        }
        return planes;
    }

    private const int Half = 1 << 15;
    private const int ChromaOffset = (128 << 16) + Half - 1;

    /// <summary>
    /// The MCUs in order: per component its factor x factor blocks, row by row. A block past the component's last
    /// real block column or row is coded flat with the DC of the block before it in the MCU, as libjpeg's dummies.
    /// </summary>
    private static void WriteScan(Stream output, Plane[] planes, uint[][] divisors)
    {
        var writer = new EntropyWriter(output);
        var codes = new uint[divisors.Length * 2][];
        codes[0] = EntropyWriter.Codes(JpegStandardTables.LuminanceDc);
        codes[1] = EntropyWriter.Codes(JpegStandardTables.LuminanceAc);
        if (divisors.Length == 2)
        {
            codes[2] = EntropyWriter.Codes(JpegStandardTables.ChrominanceDc);
            codes[3] = EntropyWriter.Codes(JpegStandardTables.ChrominanceAc);
        }
        int mcuFactor = planes[0].Factor;
        int mcusWide = (planes[0].BlocksWide + mcuFactor - 1) / mcuFactor, mcusHigh = (planes[0].BlocksHigh + mcuFactor - 1) / mcuFactor;
        Span<short> block = stackalloc short[64];
        Span<int> lastDc = stackalloc int[planes.Length];
        for (int my = 0; my < mcusHigh; my++)
        {
            for (int mx = 0; mx < mcusWide; mx++)
            {
                for (int c = 0; c < planes.Length; c++)
                {
                    Plane plane = planes[c];
                    int table = c == 0 ? 0 : 1;
                    for (int by = 0; by < plane.Factor; by++)
                    {
                        for (int bx = 0; bx < plane.Factor; bx++)
                        {
                            int row = my * plane.Factor + by, column = mx * plane.Factor + bx;
                            if (row < plane.BlocksHigh && column < plane.BlocksWide)
                            {
                                IslowFdct.Transform(plane.Samples.AsSpan(row * 8 * plane.Stride + column * 8), plane.Stride, divisors[table], block);
                            }
                            else
                            {
                                short dc = block[0]; // the block before in this MCU
                                block.Clear();
                                block[0] = dc;
                            }
                            writer.Block(block, ref lastDc[c], codes[2 * table], codes[2 * table + 1]);
                        }
                    }
                }
            }
        }
        writer.Finish();
    }

    /// <summary>DQT with one table of 8-bit values in zigzag order.</summary>
    private static void WriteQuantization(Stream output, int index, ReadOnlySpan<ushort> table)
    {
        Span<byte> segment = stackalloc byte[69];
        segment[0] = 0xFF;
        segment[1] = JpegMarkers.Dqt;
        BinaryPrimitives.WriteUInt16BigEndian(segment[2..], 67);
        segment[4] = (byte)index;
        for (int k = 0; k < 64; k++)
            segment[5 + k] = (byte)table[ScanDecoder.Natural(k)];
        output.Write(segment);
    }

    /// <summary>SOF0: 8-bit samples, the size, and per component its id (1, 2, 3), sampling factors and table.</summary>
    private static void WriteFrame(Stream output, int width, int height, Plane[] planes)
    {
        Span<byte> segment = stackalloc byte[10 + 3 * planes.Length];
        segment[0] = 0xFF;
        segment[1] = 0xC0;
        BinaryPrimitives.WriteUInt16BigEndian(segment[2..], (ushort)(8 + 3 * planes.Length));
        segment[4] = 8;
        BinaryPrimitives.WriteUInt16BigEndian(segment[5..], (ushort)height);
        BinaryPrimitives.WriteUInt16BigEndian(segment[7..], (ushort)width);
        segment[9] = (byte)planes.Length;
        for (int c = 0; c < planes.Length; c++)
        {
            segment[10 + 3 * c] = (byte)(c + 1);
            segment[11 + 3 * c] = (byte)(planes[c].Factor * 0x11);
            segment[12 + 3 * c] = (byte)(c == 0 ? 0 : 1);
        }
        output.Write(segment);
    }

    /// <summary>DHT with one table: <paramref name="classAndIndex"/> (0x10 for AC), then its counts and symbols.</summary>
    private static void WriteHuffman(Stream output, int classAndIndex, ReadOnlySpan<byte> table)
    {
        Span<byte> head = [0xFF, JpegMarkers.Dht, 0, 0, (byte)classAndIndex];
        BinaryPrimitives.WriteUInt16BigEndian(head[2..], (ushort)(3 + table.Length));
        output.Write(head);
        output.Write(table);
    }

    /// <summary>SOS over every component (DC and AC tables 0 for Y, 1 for chroma), coefficients 0-63, no approximation.</summary>
    private static void WriteScanHeader(Stream output, int components)
    {
        Span<byte> segment = stackalloc byte[8 + 2 * components];
        segment[0] = 0xFF;
        segment[1] = JpegMarkers.Sos;
        BinaryPrimitives.WriteUInt16BigEndian(segment[2..], (ushort)(6 + 2 * components));
        segment[4] = (byte)components;
        for (int c = 0; c < components; c++)
        {
            segment[5 + 2 * c] = (byte)(c + 1);
            segment[6 + 2 * c] = (byte)(c == 0 ? 0x00 : 0x11);
        }
        segment[5 + 2 * components] = 0;
        segment[6 + 2 * components] = 63;
        segment[7 + 2 * components] = 0;
        output.Write(segment);
    }
}
