//! Board glue for QEMU's `mps2-an386` (an Arm MPS2 board with a Cortex-M4): output and exit
//! through semihosting, the status pin on the FPGA LED register, and a SysTick delay.

use core::convert::Infallible;
use core::panic::PanicInfo;

use cortex_m::delay::Delay;
use cortex_m::peripheral::Peripherals;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio::{self, HostStream};
use cortex_m_semihosting::{nr, syscall1};

use crate::board::Board;

/// Core clock of the MPS2 FPGA images (SYSCLK), which QEMU uses for SysTick.
const CORE_CLOCK_HZ: u32 = 25_000_000;

/// Address of the FPGA I/O block's LED register; bit 0 drives LED0.
const FPGAIO_LED: usize = 0x4002_8000;

/// The mps2-an386 board under QEMU.
pub struct Qemu {
    serial: SemihostingSerial,
    status: Led0,
    delay: Delay,
    /// Ticks per second of the semihosting elapsed-time clock.
    tick_hz: u64,
}

impl Qemu {
    /// Takes the core peripherals and opens the semihosting console.
    ///
    /// # Panics
    /// Panics when called twice, or when the host has no semihosting console (QEMU started
    /// without `-semihosting-config enable=on`).
    pub fn take() -> Self {
        let peripherals = Peripherals::take().expect("Qemu::take is called once");
        let stdout = hio::hstdout().expect("semihosting console; run QEMU with -semihosting-config enable=on");
        // SAFETY: SYS_TICKFREQ ignores its argument and only returns a value.
        let tick_hz = unsafe { syscall1(nr::TICKFREQ, 0) };
        Self {
            serial: SemihostingSerial(stdout),
            status: Led0,
            delay: Delay::new(peripherals.SYST, CORE_CLOCK_HZ),
            tick_hz: if tick_hz == 0 || tick_hz == usize::MAX { 1 } else { tick_hz as u64 },
        }
    }
}

impl Board for Qemu {
    type Serial = SemihostingSerial;
    type Status = Led0;
    type Delay = Delay;

    fn serial(&mut self) -> &mut SemihostingSerial {
        &mut self.serial
    }

    fn status(&mut self) -> Option<&mut Led0> {
        Some(&mut self.status)
    }

    fn delay(&mut self) -> &mut Delay {
        &mut self.delay
    }

    fn micros(&mut self) -> u32 {
        let mut ticks = [0u32; 2];
        // SAFETY: SYS_ELAPSED writes the 64-bit tick count into the two words at the pointer,
        // which points to `ticks`.
        let status = unsafe { syscall1(nr::ELAPSED, ticks.as_mut_ptr() as usize) };
        if status != 0 {
            return 0;
        }
        let ticks = u64::from(ticks[0]) | (u64::from(ticks[1]) << 32);
        // Truncation to u32 is the documented wrap-around.
        (u128::from(ticks) * 1_000_000 / u128::from(self.tick_hz)) as u32
    }

    fn core_clock_hz(&self) -> u32 {
        CORE_CLOCK_HZ
    }

    fn exit(&mut self, success: bool) -> ! {
        debug::exit(if success { EXIT_SUCCESS } else { EXIT_FAILURE });
        // Reached only when the host ignores the exit request.
        loop {
            cortex_m::asm::wfi();
        }
    }
}

/// The semihosting console as an `embedded-io` writer.
pub struct SemihostingSerial(HostStream);

/// The host rejected a semihosting write.
#[derive(Debug)]
pub struct SemihostingError;

impl embedded_io::Error for SemihostingError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

impl embedded_io::ErrorType for SemihostingSerial {
    type Error = SemihostingError;
}

impl embedded_io::Write for SemihostingSerial {
    fn write(&mut self, buf: &[u8]) -> Result<usize, SemihostingError> {
        self.0.write_all(buf).map_err(|()| SemihostingError)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), SemihostingError> {
        Ok(())
    }
}

/// LED0 of the MPS2 FPGA I/O block, as an output pin.
pub struct Led0;

impl Led0 {
    fn set(&mut self, on: bool) {
        let register = FPGAIO_LED as *mut u32;
        // SAFETY: FPGAIO_LED is the memory-mapped LED register of mps2-an386, a 32-bit
        // read-write register that only drives the LEDs.
        unsafe {
            let value = register.read_volatile();
            register.write_volatile(if on { value | 1 } else { value & !1 });
        }
    }
}

impl embedded_hal::digital::ErrorType for Led0 {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Led0 {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.set(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        self.set(true);
        Ok(())
    }
}

/// Prints the panic message on the semihosting console and exits QEMU with failure.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if let Ok(mut stderr) = hio::hstderr() {
        use core::fmt::Write;
        let _ = writeln!(stderr, "[firmware] panic: {info}");
    }
    debug::exit(EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
