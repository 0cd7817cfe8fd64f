using Sd.Loaders.Upscalers;

namespace Sd.Engine.Upscaling;

/// <summary>
/// An ESRGAN-family model upscaler (RRDBNet, or Real-ESRGAN's compact SRVGGNet) run as AUTOMATIC1111 runs it
/// (modules/upscaler_utils.py, upscale_with_model, with its ESRGAN_tile 192 and ESRGAN_tile_overlap 8 defaults): the
/// 8-bit RGB picture is cut into overlapping tiles (images.split_grid; tiles past the picture's edge read black), each
/// tile goes to the network as BGR floats byte / 255 (float64 division, then float32), its output is clamped to
/// [0, 1], times 255 and rounded half to even to bytes, and the tiles are pasted back with Pillow's linear masks over
/// the overlaps (images.combine_grid).
/// Real-ESRGAN's x2 / x1 models take the tile pixel-unshuffled, reflect-padded to the factor first and cropped after,
/// as spandrel runs them. Not thread safe (one set of activation buffers).
/// </summary>
public sealed unsafe class EsrganUpscaler : IDisposable
{
    /// <summary>A1111's defaults (shared_options.py: ESRGAN_tile, ESRGAN_tile_overlap).</summary>
    public const int DefaultTileSize = 192;
    public const int DefaultTileOverlap = 8;

    private readonly EsrganFile _file;
    private readonly IUpscaleNetwork _network;

    private EsrganUpscaler(EsrganFile file, int tileSize, int tileOverlap)
    {
        TileSize = tileSize;
        TileOverlap = tileOverlap;
        if (file.Config.InChannels != 3 || file.Config.OutChannels != 3)
        {
            throw new Sd.Loaders.InvalidFileException(file.Path,
                $"the model maps {file.Config.InChannels} channels to {file.Config.OutChannels}; an upscaler for RGB pictures maps 3 to 3");
        }
        _file = file;
        _network = file.Config.Architecture == EsrganArchitecture.Compact
            ? new CompactNet(file.Config, file.Weights)
            : new RrdbNet(file.Config, file.Weights);
    }

    /// <summary>
    /// Loads an ESRGAN-family .safetensors file (see <see cref="EsrganFile"/>; pickles are refused) to run in tiles of
    /// <paramref name="tileSize"/> input pixels (0: the whole picture at once) sharing <paramref name="tileOverlap"/>.
    /// </summary>
    public static EsrganUpscaler Load(string path, int tileSize = DefaultTileSize, int tileOverlap = DefaultTileOverlap)
    {
        if (tileSize < 0 || tileOverlap < 0 || tileSize > 0 && tileOverlap >= tileSize)
        {
            throw new ArgumentOutOfRangeException(nameof(tileOverlap), $"tiles of {tileSize} pixels overlapping by {tileOverlap}: the size must be 0 (no tiles) or more than the overlap, both not negative");
        }
        EsrganFile file = EsrganFile.Open(path);
        try
        {
            return new EsrganUpscaler(file, tileSize, tileOverlap);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>A1111's name for it: the file name without extension (what "Hires upscaler:" records).</summary>
    public string Name => _file.Name;

    public EsrganConfig Config => _file.Config;

    /// <summary>Output pixels per input pixel along each side.</summary>
    public int Scale => _file.Config.Scale;

    /// <summary>Tile side in input pixels; 0 runs the whole picture at once.</summary>
    public int TileSize { get; }

    public int TileOverlap { get; }

    /// <summary>
    /// One pass of the model (A1111's do_upscale): RGB bytes [height, width, 3] to [height x Scale, width x Scale, 3].
    /// </summary>
    public byte[] UpscaleOnce(byte[] rgb, int height, int width, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        if (rgb.Length != (long)height * width * 3)
        {
            throw new ArgumentException($"an RGB picture of {height}x{width} holds {(long)height * width * 3} bytes, got {rgb.Length}", nameof(rgb));
        }
        if (TileSize <= 0)
        {
            return RunTile(rgb, height, width);
        }
        if (width <= TileOverlap || height <= TileOverlap)
        {
            throw new ArgumentException($"a {height}x{width} picture is no wider than the tile overlap {TileOverlap}: A1111's grid has no tile for it", nameof(rgb));
        }
        TileGrid grid = TileGrid.Split(width, height, TileSize, TileOverlap);
        var tiles = new byte[grid.Rows.Length][][];
        for (int r = 0; r < grid.Rows.Length; r++)
        {
            tiles[r] = new byte[grid.Columns.Length][];
            for (int c = 0; c < grid.Columns.Length; c++)
            {
                cancellation.ThrowIfCancellationRequested();
                byte[] tile = TileGrid.Crop(rgb, height, width, grid.Columns[c], grid.Rows[r], TileSize, TileSize);
                tiles[r][c] = RunTile(tile, TileSize, TileSize);
            }
        }
        return grid.Combine(tiles, Scale);
    }

    /// <summary>upscale_pil_patch: one picture through the network, bytes to bytes.</summary>
    private byte[] RunTile(byte[] rgb, int height, int width)
    {
        int s = _file.Config.ShuffleFactor;
        int ph = (height + s - 1) / s * s, pw = (width + s - 1) / s * s; // spandrel's pad_to_multiple (reflect)
        int h = ph / s, w = pw / s, c = 3 * s * s;
        if (ph - height >= height || pw - width >= width)
        {
            throw new ArgumentException($"a {height}x{width} picture is too small to reflect-pad to a multiple of {s}");
        }
        int up = _file.Config.NetworkScale;
        int oh = h * up, ow = w * up;
        float[] input = new float[(long)h * w * c];
        float[] output = new float[(long)oh * ow * _file.Config.OutChannels];
        for (int y = 0; y < ph; y++)
        {
            int sy = y < height ? y : 2 * height - 2 - y;
            for (int x = 0; x < pw; x++)
            {
                int sx = x < width ? x : 2 * width - 2 - x;
                // NCHW channel of pixel_unshuffle: channel * s^2 + (y mod s) * s + (x mod s), channel in BGR order.
                long pixel = ((long)(y / s) * w + x / s) * c + (y % s) * s + x % s;
                long source = ((long)sy * width + sx) * 3;
                for (int k = 0; k < 3; k++)
                {
                    input[pixel + (long)k * s * s] = (float)(rgb[source + 2 - k] / 255.0);
                }
            }
        }
        fixed (float* px = input, py = output)
        {
            _network.Forward(px, h, w, py);
        }
        int scale = _file.Config.Scale;
        int th = height * scale, tw = width * scale;
        var result = new byte[(long)th * tw * 3];
        for (int y = 0; y < th; y++)
        {
            for (int x = 0; x < tw; x++)
            {
                long source = ((long)y * ow + x) * _file.Config.OutChannels;
                long target = ((long)y * tw + x) * 3;
                for (int k = 0; k < 3; k++)
                {
                    result[target + 2 - k] = ToByte(output[source + k]);
                }
            }
        }
        return result;
    }

    /// <summary>torch_bgr_to_pil_image: clamp to [0, 1], times 255 in float32, numpy's round (half to even).</summary>
    private static byte ToByte(float value)
    {
        if (float.IsNaN(value)) return 0;
        float scaled = 255f * Math.Clamp(value, 0f, 1f);
        return (byte)MathF.Round(scaled, MidpointRounding.ToEven);
    }

    /// <summary>Frees the activation buffers until the next call.</summary>
    public void ReleaseRunBuffers() => _network.ReleaseBuffers();

    public void Dispose()
    {
        _network.Dispose();
        _file.Dispose();
    }
}
