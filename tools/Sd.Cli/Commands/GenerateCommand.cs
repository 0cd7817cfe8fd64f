using System.Globalization;
using Sd.Engine.Imaging;
using Sd.Engine.Pipelines;
using Sd.Engine.Schedulers;
using Sd.Engine.Tensors;
using Sd.Engine.Text;
using Sd.Loaders;
using Sd.Loaders.IO;
using Sd.Loaders.Npy;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;

namespace Sd.Cli.Commands;

/// <summary><c>sd generate</c>: txt2img to a PNG that carries its parameters.</summary>
public static partial class GenerateCommand
{
    private const string Help = """
        Usage: sd generate [--model M] (--prompt TEXT | --parameters-from FILE) [--negative-prompt TEXT] [--prompt-syntax weighted|chunked|plain]
                           [--steps N] [--guidance G] [--scheduler NAME] [--seed N] [--latents init.npy] [--noise-dir DIR]
                           [--variation-seed N --variation-strength S] [--seed-resize-from WxH]
                           [--width 512] [--height 512] [--clip-skip N] [--guidance-rescale R] [--tokenizer DIR]
                           [--config DIR] [--vae VAE] [--batch-count N]
                           [--init-image img.png --strength 0.8 [--mask mask.png] [--resize-mode just|crop|fill]]
                           [--mask-blur 4] [--inpaint-area whole|only-masked] [--masked-padding 32] [--invert-mask]
                           [--masked-content original|fill|latent-noise|latent-nothing]
                           [--hires-scale 2 | --hires-width W --hires-height H] [--hires-strength 0.7] [--hires-steps N]
                           [--hires-scheduler NAME] [--hires-prompt TEXT] [--hires-negative-prompt TEXT] [--hires-upscaler NAME]
                           [--lora FILE[:SCALE] ...] [--lora-dir DIR] [--embedding FILE[:TOKEN] ...] [--threads T]
                           [--controlnet PATH --control-image edges.png [--control-preprocessor none|canny|invert|inpaint]
                            [--canny-low 100] [--canny-high 200] [--control-scale 1] [--control-start 0]
                            [--control-end 1] [--control-mode balanced|prompt|controlnet]
                            [--control-resize-mode just|crop|fill] ...] [--guess-mode]
                           [--adapter PATH --adapter-image sketch.png [--adapter-scale 1] ...] [--adapter-factor 1]
                           [--ip-adapter FILE --ip-adapter-image picture.png|DIR [--ip-adapter-scale 1] [--ip-adapter-block-scales JSON]
                            [--ip-adapter-mask mask.png|DIR|none] [--image-encoder DIR] ...]
                           [--log-level trace|debug|information|warning|error|none]
                           --out out.png|out.jpg [--jpeg-quality 80] [--out-latents final.npy] [--out-image-npy image.npy]

        Text to image. Prompts are read as AUTOMATIC1111 does (--prompt-syntax weighted, the default): (word:1.3)
        multiplies a word's weight by 1.3, (word) by 1.1, [word] divides it by 1.1, \( \) \[ \] are the literal
        brackets, BREAK starts a new chunk, and prompts of any length (up to 2400 tokens) are encoded in chunks of 75
        tokens. Both syntaxes read A1111's prompt editing too: [from:to:when] switches text after step when (a
        fraction of the steps if it has a decimal point), [a|b] alternates every step, and "a castle AND a dragon
        :0.7" guides by each part (A1111's composable diffusion, up to 8 parts). --prompt-syntax chunked keeps
        the long prompts and the editing but reads the other brackets and BREAK as text; plain is diffusers' (the
        text as written, cut at 77 tokens with a warning). --clip-skip N counts as diffusers does
        (0, the default, is the last layer; 1 the one before it), and the PNG records it as A1111 counts (N + 1).
        Without --model it runs the built-in demo model: a toy network with random weights made in
        memory (no files, no download), so the picture is noise; it shows the tool works. Point --model at a real
        SD 1.x/2.x diffusers folder or .safetensors checkpoint for real images.
        Schedulers: ddim, pndm, lcm, unipc-a1111 (A1111's UniPC: bh1 of order 3 over time spaced evenly from
        1 to 1/1000; A1111 counts its calls as len(range(0, 1000, 1000 // N)): 30 steps run 31; 3 steps at least),
        and euler, euler-a, dpm++-2m, dpm++-2m-sde, dpm++-2m-sde-heun (A1111's
        DPM++ 2M SDE Heun), dpm++-3m-sde, unipc, heun, dpm2, dpm2-a, dpm++-2s-a, dpm++-sde, lms, restart (A1111's
        Restart: Heun steps, from 20 steps on with restart segments that noise the sample back up), dpm-fast
        (A1111's DPM fast: steps of up to three calls, N calls in all, from the model's top level down to its lowest,
        where it stops), each also as
        NAME-karras (Karras sigmas), NAME-exponential (A1111's Exponential schedule type, its default for
        DPM++ 2M SDE (Heun) and 3M SDE), NAME-beta (A1111's Beta schedule
        type: Beta(0.6, 0.6) quantiles), NAME-kl-optimal (KL Optimal: evenly spaced in arctan sigma), NAME-ays
        (NVIDIA's Align Your Steps levels for SD 1.5, as ComfyUI interpolates them), NAME-simple (A1111's and
        ComfyUI's Simple: every (1000/steps)-th of the model's levels), NAME-normal (Normal: timesteps evenly spaced,
        levels interpolated in log sigma; A1111's Uniform, its default for Euler) and NAME-sgm-uniform (SGM
        Uniform: the same over steps + 1 points, the last dropped) (heun, dpm2(-a), dpm++-2s-a, dpm++-sde and
        restart call the model twice per step but the last, so N steps take 2N - 1 calls; restart takes one call
        less per restart where it restarts from the finished sample, as A1111 does when the lowest level is above
        0.2, and fewer steps where no level near 2 lies above the one near 0.1; progress counts calls).
        A missing --scheduler, --steps or --guidance takes the model's default: 4 steps of lcm for a latent
        consistency model (an LCM-distilled UNet or an LCMScheduler config), 20 of euler-a otherwise, and guidance 7.5
        (1 for an LCM-LoRA merge: an LCMScheduler config on a plain UNet). --seed N draws the initial latents
        (and any scheduler noise) exactly as diffusers does on the CPU with torch.Generator().manual_seed(N).
        --variation-strength S (in [0, 1]) with --variation-seed V is A1111's variation seed: the noise a run starts
        from (the initial latents; the noise added to an --init-image or in a hires fix) is blended with the first draw
        of V's generator by A1111's slerp, 0 keeping the seed's and 1 taking V's (image i of a batch: the seed and
        V + i; a random V where none is given). The sampler's own noise stays the seed's. --seed-resize-from WxH is
        A1111's seed resize: the seed's start noise is drawn for a WxH picture (and varied there) and pasted centred
        into the noise of the output size (cropped where larger), so a composition found at one size mostly carries
        over to a nearby one; at the output size it changes nothing, and a hires fix's second pass pastes it into its
        own larger noise, as A1111 does. W and H are multiples of 8; 0x0 turns it off.
        --latents gives NCHW [1, 4, height/8, width/8] initial latents instead (txt2img and inpainting; the seed
        still draws any scheduler noise), and --noise-dir replays recorded draws noise_000.npy, noise_001.npy, ...
        for exact reproduction of a reference run. --init-image runs img2img from a PNG, JPEG, WebP or BMP (the last
        int(steps x strength) steps; the picture is turned upright by its EXIF orientation first, as diffusers' load_image
        and A1111 do; its alpha is dropped, as diffusers drops it); with --mask (white = repaint, read as gray, then
        resized) it inpaints: a 4-channel UNet keeps the unmasked area from the picture, a 9-channel inpainting UNet
        (runwayml/stable-diffusion-inpainting) is shown the mask and the masked picture. Without --width/--height the
        output is the picture's size, each side rounded down to a multiple of 8 (as diffusers does); a picture (and mask)
        of another size than the output is resized by --resize-mode as A1111's resize modes do it with Pillow: just (Just
        resize, the default: Lanczos to the size), crop (Crop and resize: to cover it, aspect ratio kept, centred, the
        rest cut off) or fill (Resize and fill: to fit inside, aspect ratio kept, centred, the picture's edges stretched
        over the bands left). --mask-blur, --inpaint-area, --masked-padding, --invert-mask and --masked-content (any
        of them) inpaint as A1111 does around the run, byte for byte with its Pillow and OpenCV steps: a see-through
        picture is flattened onto white; the mask (an RGBA mask with any see-through pixel: its alpha, over 128 or not) is
        inverted by --invert-mask (A1111's Inpaint not masked) and blurred by --mask-blur (A1111's Mask blur, 0 to 64
        pixels, 4 by default); --inpaint-area only-masked repaints only the blurred mask's bounding box, grown by
        --masked-padding (0 to 256, 32 by default) and to the output's aspect ratio, at the output size, and scales the
        result back into the whole picture (the PNG then has the picture's size; the mask must have it too); whole (the
        default) repaints the picture resized. --masked-content fill (A1111's Masked content) starts the run from the
        picture with its masked area painted over by blurs of the colours around it; original (the default, as in
        A1111's UI) from the picture as it is; latent-noise and latent-nothing from the picture's latents with the
        masked ones replaced by the run's start noise or by zeros (a run below --strength 1 starts from them). Then the picture is laid over the result, opaque where the blurred mask
        is 0, so the picture's own pixels come back beyond the blur's reach. Without them Sd inpaints as diffusers
        does: a hard mask and no overlay. --out-latents and --out-image-npy hold the run's own output.
        An LCM-distilled UNet (time_cond_proj_dim, e.g. LCM Dreamshaper v7) is conditioned on --guidance instead of
        classifier-free guidance, so the negative prompt is not used.
        --hires-scale S (or --hires-width W --hires-height H, one of them 0 to keep the aspect ratio; both of another
        aspect ratio are covered, then cropped, as A1111 does) adds
        AUTOMATIC1111's hires fix to txt2img: the latents are upscaled (--hires-upscaler: A1111's latent upscalers,
        Latent (bilinear, the default), "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
        "Latent (nearest)", "Latent (nearest-exact)", or latent-bicubic and the like; or the picture is: Lanczos,
        None, Nearest, A1111's image upscalers without a model, decoded, resized with Pillow and encoded again) to int(S x
        size), each side rounded down to a multiple of 8, and denoised again as A1111 lays out its second pass: the last
        --hires-steps N (default, or 0: --steps) of a schedule of int(N / --hires-strength) steps (default strength
        0.7), with the same prompts, scheduler and seed; prompt editing counts on from the first pass ([a:b:25] after
        20 steps switches 5 steps in, [a:b:1.5] halfway). --hires-scheduler, --hires-prompt and
        --hires-negative-prompt give the second pass its own (A1111's hires sampler and prompts; a hires prompt's
        LoRA tags are taken out, not applied). Schedules and noise are Sd's, so a seed does not give A1111's picture.
        --batch-count N makes N images with seeds S, S+1, ... from --seed S (each reproducible alone), written as
        out-1.png ... out-N.png (the same suffixes for --out-latents and --out-image-npy); the prompt is encoded and
        each component loaded once for the whole batch.
        --lora merges a LoRA (.safetensors, kohya's lora_unet_/lora_te_ names, LyCORIS LoCon/LoHa/LoKr/full/norm
        and DoRA included, diffusers' unet./text_encoder. ones or ComfyUI's diffusion_model./text_encoders. ones) into the
        UNet and text encoder as they load, at SCALE (default 1); repeat it to stack LoRAs (merged in order, --lora
        files before prompt tags; the order matters only for DoRA modules, which normalise what came before). Merged, a LoRA costs
        nothing per step. One made for another model (SD 1.x vs 2.x, SDXL) is refused, naming a module that does
        not fit. For an LCM-LoRA give --scheduler lcm --steps 4 --guidance 1. With --lora-dir DIR, the prompt's
        A1111 tags <lora:NAME:W> (text encoder and UNet at W), <lora:NAME:TE:UNET> or <lora:NAME:te=A:unet=B> merge
        DIR's NAME.safetensors (searched in subfolders too; else the file trained as NAME, its ss_output_name) the
        same way; without it they are taken out of the prompt and not applied (a warning says so). The PNG keeps
        them in the prompt; Lora: lists the --lora files.
        --embedding adds a textual inversion (.safetensors: diffusers' learned_embeds or A1111's emb_params, e.g.
        EasyNegative): prompts call it up by TOKEN, by default the word in a diffusers file and the file name of an
        A1111 one, matched exactly as written (case included); repeat it to add several. One made for another model
        (vectors of another width) is refused.
        --controlnet PATH steers the run with a ControlNet (a diffusers ControlNet folder: config.json and
        diffusion_pytorch_model[.fp16].safetensors, e.g. lllyasviel/control_v11p_sd15_canny; or a .safetensors file,
        diffusers-named or original-format as lllyasviel's control_v11p_sd15_canny.safetensors, whose config is the
        config.json beside it or else inferred from its shapes) and --control-image, the preprocessed picture (an edge
        map, depth map, pose skeleton...), resized to the output with Lanczos as diffusers does, and to a hires fix's
        second pass, by --control-resize-mode: just (the default), crop or fill, as --resize-mode (A1111's Resize Mode
        names are recorded; its ControlNet extension resizes with OpenCV, Sd with Pillow's Lanczos as diffusers). --control-preprocessor canny makes it from a photograph: its edges as OpenCV's cv2.Canny with
        thresholds --canny-low and --canny-high (100 and 200), at the photograph's own size (`sd preprocess` shows
        them); invert takes 255 minus each RGB value (black lines on white for a lineart or scribble ControlNet);
        inpaint, for an inpainting ControlNet (control_v11p_sd15_inpaint), sets the picture's pixels under the
        run's --mask (inverted by --invert-mask; the picture's size, e.g. the --init-image) to -1, as diffusers'
        make_inpaint_condition, and resizes that by nearest neighbours; none (the default) takes the picture as it
        is. Repeat --controlnet and --control-image, in order, for
        several ControlNets: their residuals add up. --control-scale multiplies a ControlNet's residuals (diffusers'
        controlnet_conditioning_scale, 1); --control-start and --control-end limit it to that fraction of the steps
        (0 and 1); --control-mode is A1111's Control Mode: balanced (the default), prompt ("My prompt is more
        important": the residuals weighted 0.825^(12 - i), from 0.1 at the first block to 1 at the middle) or
        controlnet ("ControlNet is more important": those weights, on the conditioned prediction only; a canny unit
        gets them in a hires fix's second pass whatever its mode, as A1111 forces there); these,
        --control-resize-mode, --control-preprocessor and the thresholds are each given once for every ControlNet or
        once per --controlnet.
        --guess-mode (diffusers' guess_mode, not with --control-mode) applies them to the conditioned prediction only,
        scaled from 0.1 to 1 across the blocks. A ControlNet's encoder runs beside the UNet at
        every step; its picture's embedding is computed once.
        --adapter PATH steers the run with a T2I-Adapter (a diffusers T2IAdapter folder, e.g.
        TencentARC/t2iadapter_canny_sd15v2, or its weights file with the config.json beside it; full_adapter, SD 1.x/2.x)
        and --adapter-image, its preprocessed picture, taken to the adapter's channels (gray for canny and sketch
        adapters, as Pillow's convert("L")) and resized to each pass with Lanczos. Its features are made once per pass,
        not per step: nearly free beside a ControlNet. Repeat both, in order, for several adapters (their features add
        up); --adapter-scale (diffusers' adapter_conditioning_scale, 1) is given once or per --adapter, and
        --adapter-factor F (1; diffusers' SDXL adapter pipeline's adapter_conditioning_factor) limits them all to
        the first int(steps x F) steps. Each is
        recorded as A1111's ControlNet extension records an adapter, as a ControlNet unit after the ControlNets.
        --ip-adapter FILE uses --ip-adapter-image, a picture, as a prompt beside the text (an IP-Adapter in h94's
        layout, e.g. h94/IP-Adapter's models/ip-adapter_sd15.safetensors, ip-adapter-plus_sd15, ip-adapter-plus-face_sd15
        or ip-adapter-full-face_sd15; FaceID files are refused). The picture goes through the CLIP image encoder the
        adapter was trained with (--image-encoder DIR, a CLIPVisionModelWithProjection folder; by default the
        image_encoder folder beside the adapter file, where h94 keeps it), resized and centre-cropped as transformers'
        CLIPImageProcessor does; its image tokens are attended to in every cross-attention layer, scaled by
        --ip-adapter-scale (diffusers' set_ip_adapter_scale, 1). --ip-adapter-block-scales JSON scales per attention
        block as diffusers' set_ip_adapter_scale takes a dict (InstantStyle), e.g. '{"up": {"block_1": [0.0, 1.0,
        0.0]}}': blocks not named get 0, and --ip-adapter-scale multiplies them. The unconditioned half of guidance
        sees zero image embeddings (plain) or the encoding of zero pixels (Plus, full-face), as in diffusers. A folder
        as --ip-adapter-image gives the adapter all its pictures (1 to 16, natural order), attended to together as
        diffusers does a list of pictures. --ip-adapter-mask (a picture, or a folder of one per picture, in the same
        order; none for an adapter without) confines each picture to where its mask is white (diffusers'
        ip_adapter_masks): each picture is then attended to alone and its attention weighted by the mask, made
        binary at the output size and resized to each layer's grid. The encoder runs once per generation. Repeat
        --ip-adapter and --ip-adapter-image for several; --ip-adapter-scale, --ip-adapter-block-scales,
        --ip-adapter-mask and --image-encoder are given once or per --ip-adapter. Recorded as A1111's ControlNet
        extension records one, as a ControlNet unit after the others (block scales and the masks' name beside it).
        --vae replaces the model's VAE: a diffusers VAE folder, or a .safetensors VAE in the original naming (e.g.
        vae-ft-mse-840000-ema-pruned.safetensors) or diffusers'.
        The PNG carries the parameters in an A1111-style "parameters" text chunk; an --out name ending in .jpg or
        .jpeg writes a JPEG instead, as A1111 saves one (Pillow's encoder at --jpeg-quality, 1-100, A1111's default 80;
        the parameters in EXIF's UserComment). Components are loaded one at a
        time (text encoder, UNet, VAE), so peak memory is that of the largest; the load time reported is their sum.
        --parameters-from FILE takes the prompts and settings from A1111's parameters, as its PNG Info sends them to
        txt2img: a picture's (a PNG's "parameters" text, a JPEG's or WebP's EXIF UserComment) or a UTF-8 text file of
        them. A picture Sd made is made again exactly with the same --model, LoRAs, embeddings and input files (but for
        dpm++-2m*-sgm-uniform, which A1111 names as the plain dpm++-2m* levels, read back as those, and a model upscaler's
        hires fix, which needs --hires-upscaler FILE again). Prompt, Negative prompt, Steps, Sampler and Schedule type
        (old names such as "DPM++ 2M Karras" too; no schedule type is A1111's default for the sampler: Karras for DPM++
        2M, Exponential for DPM++ 2M SDE), CFG scale, Sd's Guidance rescale, Seed, Variation seed and its strength, Seed
        resize from, Sd's Resize mode (with --init-image), Size, Clip skip, Emphasis, the Hires keys (txt2img) and
        Denoising strength (the hires fix's, or with --init-image the img2img's) become their flags; flags given as well
        win (--hires-scale 1 turns a recorded hires fix off, --variation-strength 0 a variation, --seed-resize-from 0x0 a
        seed resize). A sampler Sd does not run (DPM adaptive, Polyexponential schedules) is refused unless --scheduler is
        given; other keys that set something Sd does not take from them (Eta, ENSD, a VAE or LoRA, which need their own
        flags) are named in a warning. A1111's own pictures are not made again: its noise (on a GPU by default) and
        schedules differ.
        """;

    /// <summary>Printed first when there is no --model: the demo's picture must never pass for a result.</summary>
    public const string DemoNotice = """
        No --model given: running the built-in demo model (a toy network with random weights, made in memory).
        Its output is noise. For real images, point --model at a Stable Diffusion 1.x/2.x diffusers folder or
        .safetensors checkpoint.
        """;

    private static readonly IReadOnlyCollection<string> Flags = ModelOptions.With("--prompt", "--negative-prompt", "--steps", "--guidance",
        "--scheduler", "--seed", "--latents", "--noise-dir", "--width", "--height", "--clip-skip", "--out", "--out-latents",
        "--out-image-npy", "--init-image", "--strength", "--mask", "--guidance-rescale", "--batch-count", "--prompt-syntax", "--lora-dir",
        "--hires-scale", "--hires-width", "--hires-height", "--hires-strength", "--hires-steps", "--hires-scheduler", "--hires-prompt",
        "--hires-negative-prompt", "--hires-upscaler", "--parameters-from", "--variation-seed", "--variation-strength", "--seed-resize-from", "--resize-mode",
        "--mask-blur", "--inpaint-area", "--masked-padding", "--masked-content", PictureOutput.QualityFlag, AdapterOption.FactorFlag).ToArray();

    public static int Run(IReadOnlyList<string> args, TextWriter output)
    {
        if (args.Contains("--help"))
        {
            output.WriteLine(Help);
            return 0;
        }
        static CommandLine Parse(IReadOnlyList<string> args) => new("generate", args, Flags, ["--invert-mask", ControlNetOption.GuessModeFlag], repeatable: ["--lora", "--embedding", .. ControlNetOption.Flags, .. AdapterOption.Flags, .. IpAdapterOption.Flags]);
        CommandLine line = Parse(args);
        // A variation seed given alone varies nothing; one from a file is turned off by --variation-strength 0.
        bool variationSeedGiven = line.Has("--variation-seed");
        if (line.Has("--parameters-from"))
        {
            line = Parse(RecordedParameters.AddTo(args, line, out List<string> notApplied));
            if (notApplied.Count > 0)
            {
                string keys = notApplied.Count <= 20 ? string.Join(", ", notApplied) : $"{string.Join(", ", notApplied[..20])} and {notApplied.Count - 20} more";
                Console.Error.WriteLine($"sd generate: warning: --parameters-from {line.Get("--parameters-from")}: not applied: {keys} " +
                    "(Sd has no such setting, or it names a file: give LoRAs, embeddings and VAEs with their flags)");
            }
        }
        string outPath = line.Require("--out");
        int batchCount = line.GetInt("--batch-count", 1);
        if (batchCount < 1 || batchCount > StableDiffusionPipeline.MaxBatchCount)
        {
            throw new UsageException($"generate: --batch-count must be in [1, {StableDiffusionPipeline.MaxBatchCount}], got {batchCount}");
        }
        if (batchCount > 1 && (line.Has("--latents") || line.Has("--noise-dir")))
        {
            throw new UsageException("generate: --latents and --noise-dir reproduce one run; they need --batch-count 1");
        }
        if (line.Has("--strength") && !line.Has("--init-image"))
        {
            throw new UsageException("generate: --strength sets how much of an --init-image is repainted; give one");
        }
        if (line.Has("--resize-mode") && !line.Has("--init-image"))
        {
            throw new UsageException("generate: --resize-mode brings an --init-image (and --mask) to the output size; give one");
        }
        ResizeMode resizeMode = ResizeModeOf(line);
        if (line.Has("--latents") && line.Has("--init-image") && !line.Has("--mask"))
        {
            throw new UsageException("generate: --latents starts txt2img or inpainting; img2img (--init-image without --mask) starts from the picture");
        }
        line.CheckOutputs(Outputs(line, outPath, 1));
        int quality = PictureOutput.Quality(line, "--out");
        if (batchCount > 1)
        {
            line.CheckOutputs(Outputs(line, outPath, batchCount));
        }
        string? model = line.Get("--model");
        if (model is null && (line.Has("--variant") || line.Has("--tokenizer") || line.Has("--config") || line.Has("--vae")))
        {
            throw new UsageException("generate: --variant, --tokenizer, --config and --vae choose a --model's files; the built-in demo model has none");
        }
        int[] latentsShape = [];
        // Read before any model loads: a size not given is the picture's (diffusers' img2img default).
        PngImage? initPicture = line.Get("--init-image") is { } initPath ? PictureFile.ReadUpright(initPath) : null;
        PngImage? maskPicture = line.Get("--mask") is { } maskPath ? PictureFile.ReadUpright(maskPath) : null;
        InpaintSettings? inpaintSettings = InpaintSettingsOf(line, initPicture, maskPicture);
        using ControlNetOption? controlNet = ControlNetOption.Read(line, maskPicture, inpaintSettings);
        using AdapterOption? adapters = AdapterOption.Read(line);
        using IpAdapterOption? ipAdapters = IpAdapterOption.Read(line);
        (int seedResizeWidth, int seedResizeHeight) = SeedResizeOf(line);
        var request = new GenerateRequest
        {
            SeedResizeFromWidth = seedResizeWidth,
            SeedResizeFromHeight = seedResizeHeight,
            Prompt = line.Require("--prompt"),
            NegativePrompt = line.Get("--negative-prompt") ?? "",
            PromptSyntax = ModelOptions.PromptSyntax(line),
            Steps = line.Has("--steps") ? line.GetInt("--steps", 0) : null,
            GuidanceScale = line.Has("--guidance") ? line.GetFloat("--guidance", 0f) : null,
            Scheduler = line.Get("--scheduler"),
            Seed = SeedOf(line, "--seed"),
            VariationStrength = line.GetFloat("--variation-strength", 0f),
            Width = line.Has("--width") || initPicture is null ? line.GetInt("--width", 512) : PictureSide(line, initPicture, initPicture.Width),
            Height = line.Has("--height") || initPicture is null ? line.GetInt("--height", 512) : PictureSide(line, initPicture, initPicture.Height),
            ClipSkip = line.GetInt("--clip-skip", 0),
            GuidanceRescale = line.GetFloat("--guidance-rescale", 0f),
            InitialLatents = line.Get("--latents") is { } latents ? NpyFile.ReadFloat32(latents, out latentsShape) : null,
            Noise = line.Get("--noise-dir") is { } dir ? new FileNoise(dir) : null,
        };
        if (variationSeedGiven && !(request.VariationStrength > 0))
        {
            throw new UsageException("generate: --variation-seed varies the start noise by --variation-strength; give one above 0");
        }
        request = request with
        {
            Strength = line.GetDouble("--strength", 0.8), Hires = Hires(line, request.Width, request.Height),
            VariationSeed = request.VariationStrength > 0 ? SeedOf(line, "--variation-seed") : null,
        };
        using Sd.Engine.Upscaling.EsrganUpscaler? hiresModel = request.Hires?.ModelUpscaler;
        var total = System.Diagnostics.Stopwatch.StartNew();
        Microsoft.Extensions.Logging.ILogger logger = ModelOptions.Setup(line);
        // The prompt's <lora:...> tags are resolved before anything loads.
        LoraSpec[] tagLoras = PromptLoras.Resolve(line, request.Prompt, request.PromptSyntax);
        LoraSpec[] loras = Loras(line);
        var options = new PipelineOptions { Memory = PipelineMemory.Sequential, Loras = [.. loras, .. tagLoras], Embeddings = ModelOptions.Embeddings(line) };
        if (model is null)
        {
            output.WriteLine(DemoNotice);
        }
        using var pipeline = model is null
            ? StableDiffusionPipeline.LoadDemo(logger, options)
            : StableDiffusionPipeline.Load(model, ModelOptions.OpenOptions(line), logger, options);
        TimeSpan open = total.Elapsed;
        request = pipeline.WithModelDefaults(request) with
        {
            ControlNets = controlNet is null ? [] : controlNet.Load(logger),
            Adapters = adapters is null ? [] : adapters.Load(),
            AdapterConditioningFactor = adapters?.Factor ?? 1,
            IpAdapters = ipAdapters is null ? [] : ipAdapters.Load(),
        };
        // The size first (a multiple of the model's VAE factor), then what must match it.
        pipeline.Validate(request, batchCount);
        if (request.InitialLatents is not null && pipeline.InitialLatentsShape(request.Width, request.Height) is var expected
            && !latentsShape.AsSpan().SequenceEqual(expected))
        {
            throw new InvalidFileException(line.Require("--latents"),
                $"initial latents are [{string.Join(", ", latentsShape)}]; a {request.Width}x{request.Height} image needs [{string.Join(", ", expected)}] (NCHW)");
        }
        A1111Inpaint? inpaint = inpaintSettings is null ? null : PrepareInpaint(line, initPicture!, maskPicture!, request, resizeMode, inpaintSettings);
        using Tensor? initImage = initPicture is null ? null
            : ImageConversion.FromPng(inpaint?.Picture ?? Resized(line, "--init-image", ImageConversion.AsRgb(initPicture), request, resizeMode));
        using Tensor? mask = maskPicture is null || inpaint is { Mask: null } ? null
            : ImageConversion.MaskFromPng(inpaint?.Mask ?? Resized(line, "--mask", ImageConversion.AsGray(maskPicture), request, resizeMode));
        request = request with { InitImage = initImage, Mask = mask, MaskedLatents = inpaint?.MaskedLatents ?? MaskedLatents.Picture };
        string modelName = (model is null ? "built-in demo (random weights)" : Path.GetFileName(Path.TrimEndingDirectorySeparator(model)))
            + Resources(line, loras, pipeline.EmbeddingTokens) + controlNet?.Parameters() + adapters?.Parameters(controlNet?.Count ?? 0)
            + ipAdapters?.Parameters((controlNet?.Count ?? 0) + (adapters?.Count ?? 0));
        // The batch's last image has the longest parameters (the most digits in its seeds): a JPEG's EXIF must hold them.
        PictureOutput.CheckParametersFit(line, "--out", Parameters(line, pipeline, request, inpaint, modelName, batchCount - 1).Length);
        bool terminal = !Console.IsOutputRedirected;
        var progress = new Progress(output, terminal);
        IReadOnlyList<GenerateResult> results = pipeline.GenerateBatch(request, batchCount, progress);
        try
        {
            TimeSpan loading = open, text = default, denoising = default, decoding = default;
            for (int i = 0; i < results.Count; i++)
            {
                GenerateResult result = results[i];
                string written = Write(line, result, Parameters(line, pipeline, request, inpaint, modelName, i), inpaint, quality, outPath, i, results.Count);
                output.WriteLine($"wrote {written} (seed {result.Seed})");
                (loading, text, denoising, decoding) = (loading + result.Loading, text + result.TextEncoding, denoising + result.Denoising, decoding + result.Decoding);
            }
            string F(TimeSpan t) => t.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture) + " s";
            // Per UNet call, which is a step but for heun, dpm2(-a), dpm++-2s-a and dpm++-sde (two calls per step) and pndm (one call more).
            double perCall = denoising.TotalSeconds / Math.Max(1, progress.Steps * results.Count);
            output.WriteLine($"time: load {F(loading)}, text {F(text)}, denoise {F(denoising)} " +
                $"({perCall.ToString("0.00", CultureInfo.InvariantCulture)} s per UNet call), " +
                $"VAE decode {F(decoding)}, total {F(total.Elapsed)}; peak RSS {BenchCommand.PeakRssBytes() / 1048576} MiB");
        }
        finally
        {
            foreach (GenerateResult result in results) result.Dispose();
        }
        return 0;
    }

    /// <summary>The A1111 parameters of image <paramref name="index"/> of a batch.</summary>
    /// <param name="model">The model's name and the LoRAs and embeddings added to it, as the parameters' last fields.</param>
    private static string Parameters(CommandLine line, StableDiffusionPipeline pipeline, GenerateRequest request, A1111Inpaint? inpaint, string model, int index)
    {
        SigmaRamp ramp = pipeline.RampOf(request.Scheduler!);
        SigmaRamp? hiresRamp = request.Hires?.Scheduler is { } hiresScheduler ? pipeline.RampOf(hiresScheduler) : null;
        string mode = request.InitImage is not null ? $"Denoising strength: {request.Strength.ToString(CultureInfo.InvariantCulture)}, {ResizeModeKey(line)}{InpaintKeys(inpaint)}"
            : request.Hires is { } hires ? HiresParameters(line, hires, hiresRamp, A1111Samplers.WritesSchedule(request.Scheduler!, ramp)) : "";
        // A1111 records its Beta schedule's shape whenever a pass runs it (Sd's is always Beta(0.6, 0.6), A1111's default).
        mode += ramp == SigmaRamp.Beta || hiresRamp == SigmaRamp.Beta
            ? FormattableString.Invariant($"Beta schedule alpha: {BetaSigmas.Alpha}, Beta schedule beta: {BetaSigmas.Beta}, ") : "";
        return $"{request.Prompt}\nNegative prompt: {request.NegativePrompt}\nSteps: {request.Steps}, {A1111Samplers.Write(request.Scheduler!, ramp)}, {mode}" +
            $"CFG scale: {request.GuidanceScale?.ToString(CultureInfo.InvariantCulture)}, {GuidanceRescale(request)}Seed: {StableDiffusionPipeline.SeedOf(request, index)}, " +
            $"{Variation(request, index)}{SeedResize(request)}Size: {request.Width}x{request.Height}, Clip skip: {request.ClipSkip + 1}, {Syntax(request.PromptSyntax)}Model: {model}";
    }

    /// <summary>
    /// Writes image <paramref name="index"/> of <paramref name="count"/>: its PNG or JPEG (with its A1111
    /// <paramref name="parameters"/>) and the optional .npy outputs, named by <see cref="BatchPath"/>; returns the picture's path.
    /// </summary>
    /// <param name="inpaint">A1111's inpainting pictures, whose overlay the picture gets (the .npy outputs do not).</param>
    private static string Write(CommandLine line, GenerateResult result, string parameters, A1111Inpaint? inpaint, int quality, string outPath, int index, int count)
    {
        // An image's files appear together or not at all; earlier images of a batch stay, each whole.
        using var files = new AtomicFileSet();
        string picturePath = BatchPath(outPath, index, count);
        PngImage picture = ImageConversion.ToRgb8(result.Image, 0, new Dictionary<string, string> { ["parameters"] = parameters });
        picture = inpaint?.Finish(picture) ?? picture;
        files.Add(picturePath, stream => PictureOutput.Write(stream, picturePath, picture, quality));
        if (line.Get("--out-latents") is { } latentsPath)
        {
            NpyArray latents = NpyTensors.AsNchwArray(result.Latents);
            files.Add(BatchPath(latentsPath, index, count), stream => NpyFile.Write(stream, latents));
        }
        if (line.Get("--out-image-npy") is { } imagePath)
        {
            float[] unit = new float[result.Image.Length];
            for (int i = 0; i < unit.Length; i++) unit[i] = ImageConversion.ToUnit(result.Image.Span[i]);
            NpyArray image = NpyArray.FromFloat32(unit, result.Image.Shape);
            files.Add(BatchPath(imagePath, index, count), stream => NpyFile.Write(stream, image));
        }
        files.Commit();
        return picturePath;
    }

    /// <summary>The --lora values: a file, then optionally ':' and a finite scale ("style.safetensors:0.8"); 1 when none.</summary>
    internal static LoraSpec[] Loras(CommandLine line)
    {
        IReadOnlyList<string> values = line.GetAll("--lora");
        var specs = new LoraSpec[values.Count];
        for (int i = 0; i < specs.Length; i++)
        {
            (string path, string? scale) = ModelOptions.FileAndSuffix(line, "--lora", values[i], "scale");
            specs[i] = scale is null ? new LoraSpec(path)
                : float.TryParse(scale, NumberStyles.Float, CultureInfo.InvariantCulture, out float value) && float.IsFinite(value) ? new LoraSpec(path, value)
                : throw new UsageException($"{line.Command}: --lora {values[i]}: the scale must be a finite number");
        }
        return specs;
    }

    /// <summary>
    /// The VAE, LoRAs and embeddings for the PNG's parameters, A1111-style (<c>VAE: vae-ft-mse.safetensors</c>,
    /// <c>Lora: "style: 0.8"</c>, <c>Embeddings: "EasyNegative"</c>); empty without any.
    /// </summary>
    private static string Resources(CommandLine line, IReadOnlyList<LoraSpec> loras, IReadOnlyList<AddedToken> embeddings)
    {
        string vae = line.Get("--vae") is { } path ? $", VAE: {Plain(Path.GetFileName(Path.TrimEndingDirectorySeparator(path)))}" : "";
        var parts = new string[loras.Count];
        for (int i = 0; i < parts.Length; i++)
        {
            parts[i] = $"{Path.GetFileNameWithoutExtension(loras[i].Path)}: {loras[i].Scale.ToString(CultureInfo.InvariantCulture)}";
        }
        var tokens = new string[embeddings.Count];
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = embeddings[i].Content;
        }
        return vae + QuotedList("Lora", parts) + QuotedList("Embeddings", tokens);
    }

    /// <summary>diffusers' guidance rescale, which A1111 does not have, under Sd's own key; empty when off.</summary>
    private static string GuidanceRescale(GenerateRequest request) =>
        request.GuidanceRescale > 0 ? FormattableString.Invariant($"Guidance rescale: {request.GuidanceRescale}, ") : "";

    /// <summary>A1111's keys of a variation seed (image <paramref name="index"/>'s: VariationSeed + index); empty without one.</summary>
    private static string Variation(GenerateRequest request, int index) => request.VariationStrength > 0
        ? FormattableString.Invariant($"Variation seed: {request.VariationSeed + (ulong)index}, Variation seed strength: {request.VariationStrength}, ")
        : "";

    /// <summary>
    /// Sd's key of a resize mode other than Just resize, by A1111's names (A1111 does not record its mode): the
    /// picture is only remade from the same input picture resized the same way.
    /// </summary>
    private static string ResizeModeKey(CommandLine line) => ResizeModeOf(line) switch
    {
        ResizeMode.Crop => "Resize mode: Crop and resize, ",
        ResizeMode.Fill => "Resize mode: Resize and fill, ",
        _ => "",
    };

    /// <summary>A1111's key of a seed resize; empty without one.</summary>
    private static string SeedResize(GenerateRequest request) => request.SeedResizeFromWidth > 0
        ? FormattableString.Invariant($"Seed resize from: {request.SeedResizeFromWidth}x{request.SeedResizeFromHeight}, ")
        : "";

    /// <summary>
    /// How the prompts were read when not as A1111 reads them by default: chunked is A1111's <c>Emphasis: None</c>
    /// (a key it reads back); plain, diffusers' cut row, has no A1111 key, so it gets its own.
    /// </summary>
    private static string Syntax(PromptSyntax syntax) => syntax switch
    {
        PromptSyntax.Chunked => "Emphasis: None, ",
        PromptSyntax.Plain => "Prompt syntax: plain, ",
        _ => "",
    };

    /// <summary>
    /// <c>, NAME: "a, b"</c> with the list escaped as a JSON string, as A1111 quotes values that hold commas (json.dumps):
    /// a quote in a name cannot end it. Empty for an empty list.
    /// </summary>
    private static string QuotedList(string name, string[] parts) => parts.Length == 0 ? "" : $", {name}: {Infotext.JsonString(string.Join(", ", parts))}";

    /// <summary>A name as an unquoted parameter value: no comma or line break may end it early.</summary>
    private static string Plain(string name) => string.Concat(name.Select(c => c == ',' || char.IsControl(c) ? '_' : c));

    /// <summary>
    /// Every file the command will write, by flag: each output flag's path for each image of the batch (with a
    /// count of 1, the paths as given: a batch's names are made from them, so they must name files too).
    /// </summary>
    private static IEnumerable<(string Flag, string Path)> Outputs(CommandLine line, string outPath, int count)
    {
        for (int i = 0; i < count; i++)
        {
            yield return ("--out", BatchPath(outPath, i, count));
            if (line.Get("--out-latents") is { } latents)
            {
                yield return ("--out-latents", BatchPath(latents, i, count));
            }
            if (line.Get("--out-image-npy") is { } image)
            {
                yield return ("--out-image-npy", BatchPath(image, i, count));
            }
        }
    }

    /// <summary>The output path of image <paramref name="index"/>: as given for a single image, name-1.ext ... name-N.ext in a batch.</summary>
    internal static string BatchPath(string path, int index, int count) =>
        count == 1 ? path : Path.Combine(Path.GetDirectoryName(path) ?? "", $"{Path.GetFileNameWithoutExtension(path)}-{index + 1}{Path.GetExtension(path)}");

    /// <summary>A one-line progress bar on a terminal, plain lines when redirected.</summary>
    private sealed class Progress(TextWriter output, bool terminal) : IProgress<StepInfo>
    {
        public int Steps { get; private set; }

        public void Report(StepInfo info)
        {
            Steps = info.Total;
            string image = info.Images > 1 ? $"image {info.Image + 1}/{info.Images}, " : "";
            string text = $"{image}step {info.Step}/{info.Total}, {info.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s";
            if (terminal)
            {
                int filled = info.Step * 30 / info.Total;
                output.Write($"\r[{new string('#', filled)}{new string('.', 30 - filled)}] {text}");
                if (info.Step == info.Total) output.WriteLine();
            }
            else
            {
                output.WriteLine(text);
            }
        }
    }
}
